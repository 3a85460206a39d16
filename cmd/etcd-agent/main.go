// Command etcd-agent turns a Fedora CoreOS node into a member of a highly
// available, TLS-secured etcd cluster, and lets an operator inspect it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
)

// Stamped at build time by the Makefile (-ldflags -X).
var (
	version            = "dev"
	defaultEtcdVersion = "v3.7.3"
)

// Exit codes. Config errors use config.ExitCode (78) so systemd's
// RestartPreventExitStatus stops a restart loop on them.
const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitUnhealthy = 3
)

// env is what a command may read from its environment; main passes the
// real one, tests their own.
type env struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

// command is one subcommand: its usage line, a summary, and its run func,
// which parses its own flags.
type command struct {
	name    string
	usage   string
	summary string
	run     func(ctx context.Context, e env, args []string) error
	sub     []*command
}

func commands() []*command {
	return []*command{
		runCommand(),
		configCommand(),
		statusCommand(),
		leaveCommand(),
		fleetlockCommand(),
		recoverCommand(),
		snapshotCommand(),
		localCommand(),
		caCommand(),
		certCommand(),
		envCommand(),
		discoveryCommand(),
		butaneCommand(),
		versionCommand(),
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// exitError carries a specific exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func dispatch(ctx context.Context, e env, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(e.stdout, "etcd-agent", cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		args = []string{"version"} // what every CLI answers
	}
	path := "etcd-agent"
	for {
		c := find(cmds, args[0])
		if c == nil {
			fmt.Fprintf(e.stderr, "%s: unknown command %q\nRun '%s --help' for the list.\n", path, args[0], path)
			return exitUsage
		}
		path += " " + c.name
		args = args[1:]
		if len(c.sub) == 0 {
			return report(e, path, c.run(ctx, e, args))
		}
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
			printUsage(e.stdout, path, c.sub)
			if len(args) == 0 {
				return exitUsage
			}
			return exitOK
		}
		cmds = c.sub
	}
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func report(e env, path string, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var cerr *config.Error
	var xerr *exitError
	var left *agent.LeftError
	switch {
	case errors.As(err, &left):
		fmt.Fprintf(e.stderr, "%s: %v\n", path, err)
		return config.ExitCode
	case errors.As(err, &cerr):
		fmt.Fprintf(e.stderr, "%s: %v\n", path, err)
		return config.ExitCode
	case errors.As(err, &xerr):
		if xerr.err != nil && xerr.err.Error() != "" {
			fmt.Fprintf(e.stderr, "%s: %v\n", path, xerr.err)
		}
		return xerr.code
	default:
		fmt.Fprintf(e.stderr, "%s: %v\n", path, err)
		return exitFailure
	}
}

func printUsage(w io.Writer, path string, cmds []*command) {
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\n", path)
	if path == "etcd-agent" {
		fmt.Fprint(w, "etcd-agent runs on every node and turns the nodes into a highly available,\n"+
			"TLS-secured etcd cluster: identity from IMDS, certificates from the shipped CA,\n"+
			"discovery or join, etcd in a rootless Podman container, readiness to systemd.\n\n")
	}
	fmt.Fprintln(w, "Commands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for a command's flags.\n", path)
}

// newFlagSet builds a command's flag set whose -h output starts with the
// usage line and summary.
func newFlagSet(e env, path, usage, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: %s\n\n%s\n", usage, summary)
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
		if b.Len() > 0 {
			fmt.Fprintf(e.stderr, "\nFlags:\n%s", b.String())
		}
	}
	return fs
}

// parseFlags parses and rejects stray positional arguments unless allowed.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: exitUsage, err: errors.New("")}
	}
	if fs.NArg() > maxArgs {
		fs.Usage()
		return &exitError{code: exitUsage, err: fmt.Errorf("unexpected argument %q", fs.Arg(maxArgs))}
	}
	return nil
}
