package main

import (
	"context"
	"fmt"
	"runtime"
)

func versionCommand() *command {
	const usage, summary = "etcd-agent version", "Print the agent version, the etcd version it runs by default, and the Go version."
	return &command{name: "version", usage: usage, summary: "print version information",
		run: func(ctx context.Context, e env, args []string) error {
			fs := newFlagSet(e, "version", usage, summary)
			if err := parseFlags(fs, args, 0); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "etcd-agent %s\netcd       %s\ngo         %s %s/%s\n",
				version, defaultEtcdVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		}}
}
