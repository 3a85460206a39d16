package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// versionInfo is `version -o json`.
type versionInfo struct {
	Agent string `json:"agent"`
	Etcd  string `json:"etcd"`
	Go    string `json:"go"`
	OS    string `json:"os"`
	Arch  string `json:"arch"`
}

func currentVersion() versionInfo {
	return versionInfo{Agent: version, Etcd: defaultEtcdVersion, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
}

// versionText is what `version` and `--version` print.
func versionText() string {
	v := currentVersion()
	return fmt.Sprintf("etcd-agent %s\netcd       %s\ngo         %s %s/%s\n", v.Agent, v.Etcd, v.Go, v.OS, v.Arch)
}

func versionCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "print version information",
		Long:  "Print the agent version, the etcd version it runs by default, and the Go version.",
		Args:  noArgs,
	}
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		if *out != formatTable {
			return printDoc(e.stdout, *out, currentVersion())
		}
		_, err := fmt.Fprint(e.stdout, versionText())
		return err
	}
	return c
}
