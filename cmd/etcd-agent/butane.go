package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/butane"

	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
)

// Output files of `etcd-agent butane`, in DIR.
const (
	nodeButaneFile = "node.bu"
	nodeIgnFile    = "node.ign"
	userDataFile   = "user-data.ign"
)

// butaneArgs are the flags of `etcd-agent butane`.
type butaneArgs struct {
	spec   string
	out    string
	format outputFormat
}

func butaneCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "butane --spec cluster.yaml --out DIR",
		Short: "render the node's Butane/Ignition config and EC2 user data",
		Long: "Render the Fedora CoreOS node config from a cluster spec: Butane (node.bu), translated and\n" +
			"validated Ignition (node.ign) and the EC2 user data (user-data.ign), checked against EC2's\n" +
			"16 KiB limit. The CA key never goes into user data unless the spec allows it: user-data.ign\n" +
			"then merges full.ign from the spec's pointer.url, pinned by its sha512. See docs/deploy-aws.md.",
		Args: noArgs,
	}
	var a butaneArgs
	c.Flags().StringVar(&a.spec, "spec", "", "cluster spec file (YAML)")
	c.Flags().StringVar(&a.out, "out", "", "directory to write node.bu, node.ign, user-data.ign (and full.ign) into")
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		a.format = *out
		return runButane(e, a)
	}
	return c
}

func runButane(e env, a butaneArgs) error {
	var ps []config.Problem
	if a.spec == "" {
		ps = append(ps, config.Problem{Field: "--spec", Problem: "is required", Fix: "pass --spec cluster.yaml (see docs/deploy-aws.md)"})
	}
	if a.out == "" {
		ps = append(ps, config.Problem{Field: "--out", Problem: "is required", Fix: "pass --out DIR"})
	}
	if len(ps) > 0 {
		return &config.Error{Problems: ps}
	}
	spec, err := butane.LoadSpec(a.spec)
	if err != nil {
		return err
	}
	res, err := butane.Render(spec, butane.Options{DefaultImageTag: defaultEtcdVersion})
	if err != nil {
		return err
	}
	written, err := writeButaneOutputs(a.out, res)
	if err != nil {
		return err
	}
	if a.format != "" && a.format != formatTable {
		return printDoc(e.stdout, a.format, newButaneSummary(a.out, res, written))
	}
	printButaneResult(e.stdout, a.out, res, written)
	return nil
}

// butaneSummary is `butane -o json`: the files written, the user-data
// size check and the renderer's notes.
type butaneSummary struct {
	Files         []butaneFile `json:"files"`
	UserData      string       `json:"user_data"`
	UserDataBytes int          `json:"user_data_bytes"`
	UserDataLimit int          `json:"user_data_limit"`
	Pointer       bool         `json:"pointer"`
	FullConfigURL string       `json:"full_config_url,omitempty"`
	Notes         []string     `json:"notes"`
}

type butaneFile struct {
	Path  string `json:"path"`
	Bytes int    `json:"bytes"`
	Mode  string `json:"mode"`
	Note  string `json:"note"`
}

func newButaneSummary(dir string, res butane.Result, written []outFile) butaneSummary {
	s := butaneSummary{UserData: filepath.Join(dir, userDataFile), UserDataBytes: len(res.UserData), UserDataLimit: butane.UserDataLimit,
		Pointer: res.Pointer, Notes: append([]string{}, res.Notes...)}
	for _, f := range written {
		s.Files = append(s.Files, butaneFile{Path: f.path, Bytes: len(f.data), Mode: fmt.Sprintf("%04o", f.mode), Note: f.note})
	}
	if res.Pointer {
		s.FullConfigURL = res.Uploads[0].Dest
	}
	return s
}

// outFile is one output file: what to write, and a note for the summary.
type outFile struct {
	path string
	data []byte
	mode fs.FileMode
	note string
}

// butaneOutputs lays out the files for res in dir. Files that carry the CA
// key are 0600.
func butaneOutputs(dir string, res butane.Result) []outFile {
	const secret = "contains the CA key: keep it private"
	files := []outFile{
		{filepath.Join(dir, nodeButaneFile), res.Butane, 0o600, secret},
		{filepath.Join(dir, nodeIgnFile), res.Ignition, 0o600, secret},
	}
	for _, up := range res.Uploads {
		files = append(files, outFile{filepath.Join(dir, up.Name), up.Contents, 0o600, "upload to " + up.Dest + "; " + secret})
	}
	if res.Pointer {
		return append(files, outFile{filepath.Join(dir, userDataFile), res.UserData, 0o644, "EC2 user data (pointer config)"})
	}
	return append(files, outFile{filepath.Join(dir, userDataFile), res.UserData, 0o600, "EC2 user data; " + secret})
}

// writeButaneOutputs writes the outputs into dir and removes a stale
// full.ign from an earlier pointer render.
func writeButaneOutputs(dir string, res butane.Result) ([]outFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	files := butaneOutputs(dir, res)
	for _, f := range files {
		if err := writeFileAtomic(f.path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	if !res.Pointer {
		stale := filepath.Join(dir, butane.FullConfigName)
		if err := os.Remove(stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove stale %s: %w", stale, err)
		}
	}
	return files, nil
}

// writeFileAtomic writes data to path with exactly mode, replacing any
// existing file (whose mode os.WriteFile would keep).
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// printButaneResult prints the files, the user-data size check and the
// renderer's notes.
func printButaneResult(w io.Writer, dir string, res butane.Result, written []outFile) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range written {
		fmt.Fprintf(tw, "%s\t%6d bytes\t%s\n", f.path, len(f.data), f.note)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nEC2 user data: %d of %d bytes: OK\n", len(res.UserData), butane.UserDataLimit)
	if res.Pointer {
		over := "under"
		if len(res.Ignition) > butane.UserDataLimit {
			over = "over"
		}
		fmt.Fprintf(w, "Full config:   %d bytes (%s the limit); user data merges it from %s, pinned by sha512 %.16s...\n",
			len(res.Ignition), over, res.Uploads[0].Dest, res.Uploads[0].SHA512)
	}
	if len(res.Notes) > 0 {
		fmt.Fprintf(w, "\nNext (files are in %s):\n", dir)
		for _, n := range res.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	fmt.Fprintf(w, "\nLaunch with: aws ec2 run-instances ... --user-data file://%s\n", filepath.Join(dir, userDataFile))
}
