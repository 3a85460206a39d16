// Command etcd-agent turns a Fedora CoreOS node into a member of a highly
// available, TLS-secured etcd cluster, and lets an operator inspect it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/etcd-agent/etcd-agent/agent"
	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/refusal"
)

// Stamped at build time by the Makefile (-ldflags -X).
var (
	version            = "dev"
	defaultEtcdVersion = "v3.7.3"
)

// Exit codes, the same for every command (docs/cli/exit-codes.md). Config
// errors use config.ExitCode (78) so systemd's RestartPreventExitStatus
// stops a restart loop on them.
const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitUnhealthy = 3
	exitConfig    = config.ExitCode
)

// env is what a command may read from its environment; main passes the
// real one, tests their own.
type env struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

const rootLong = "etcd-agent runs on every node and turns the nodes into a highly available,\n" +
	"TLS-secured etcd cluster: identity from IMDS, certificates from the shipped CA,\n" +
	"discovery or join, etcd in a rootless Podman container, readiness to systemd.\n\n" +
	"Exit codes (every command): 0 ok, 1 failed, 2 usage error, 3 unhealthy or refused,\n" +
	"78 configuration error."

// newRootCmd builds the whole command tree for one run: every command's
// flags are its own and bound to this tree, so runs share no state.
func newRootCmd(e env) *cobra.Command {
	root := groupCommand("etcd-agent", "the etcd node agent", rootLong,
		runCommand(e),
		configCommand(e),
		statusCommand(e),
		leaveCommand(e),
		fleetlockCommand(e),
		recoverCommand(e),
		snapshotCommand(e),
		localCommand(e),
		caCommand(e),
		certCommand(e),
		envCommand(e),
		discoveryCommand(e),
		butaneCommand(e),
		versionCommand(e),
	)
	root.Version = version
	root.SetVersionTemplate(versionText())
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SilenceErrors = true // report prints them, with the exit code
	root.SilenceUsage = true  // a usage error names the help command instead
	root.CompletionOptions.HiddenDefaultCmd = false
	root.SetHelpCommand(helpCommand())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	// A group runs only to say a command is missing: its usage names the
	// subcommands alone.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError(err) })
	markRunErrors(root)
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// dispatch runs the command line args and returns the exit code.
func dispatch(ctx context.Context, e env, args []string) int {
	root := newRootCmd(e)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if cmd == nil {
		cmd = root
	}
	return report(e, cmd, err)
}

// exitError carries a specific exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake on the command line (exit 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

func usageErrorf(format string, args ...any) error {
	return usageError(fmt.Errorf(format, args...))
}

// runError marks an error returned by a command's own run: anything else
// cobra returns (unknown command or flag, bad flag value, wrong arguments)
// is a usage error.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

func markRunErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(c *cobra.Command, args []string) error {
			if err := run(c, args); err != nil {
				return &runError{err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRunErrors(sub)
	}
}

// report is the one place errors become exit codes and messages on stderr.
func report(e env, cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	path := cmd.CommandPath()
	var run *runError
	if !errors.As(err, &run) {
		err = usageError(err)
	}
	say := func(err error) { fmt.Fprintf(e.stderr, "%s: %s\n", path, message(path, err)) }
	var cerr *config.Error
	var xerr *exitError
	var left *agent.LeftError
	switch {
	case errors.As(err, &left):
		say(err)
		return exitConfig
	case errors.As(err, &cerr):
		say(err)
		return exitConfig
	case errors.As(err, &xerr):
		if xerr.err != nil && xerr.err.Error() != "" {
			say(xerr.err)
		}
		if xerr.code == exitUsage {
			fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", path)
		}
		return xerr.code
	case refusal.Is(err):
		// Refused on purpose, nothing changed: "not allowed now".
		say(err)
		return exitUnhealthy
	default:
		say(err)
		return exitFailure
	}
}

// message is err's text without a leading name of the command: a package
// names its operation for its other callers ("leave: …" in the agent's
// log), and the line on stderr names the command already.
func message(path string, err error) string {
	msg := err.Error()
	words := strings.Fields(path)
	for i := 1; i < len(words); i++ {
		if rest, ok := strings.CutPrefix(msg, strings.Join(words[i:], " ")+": "); ok {
			return rest
		}
	}
	return msg
}

// groupCommand is a command that only holds subcommands: run without one,
// or with an unknown one, it is a usage error.
func groupCommand(name, short, long string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   name + " <command>",
		Short: short,
		Long:  long,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
				}
				return errors.New(msg)
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			var names []string
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, s.Name())
				}
			}
			return usageErrorf("missing command: one of %s", strings.Join(names, ", "))
		},
		DisableFlagsInUseLine:      true,
		SuggestionsMinimumDistance: 2,
	}
	c.AddCommand(subs...)
	return c
}

// helpCommand is `help [command]`: cobra's, except that an unknown topic
// is a usage error instead of the root's help with exit 0.
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "help about any command",
		Long:  "Help for any command: etcd-agent help CMD is etcd-agent CMD --help.",
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || target == nil || len(rest) > 0 {
				return usageErrorf("unknown help topic %q", strings.Join(args, " "))
			}
			return target.Help()
		},
	}
}

// noArgs refuses positional arguments (a usage error).
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
}

// maxArgs refuses more than n positional arguments.
func maxArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) > n {
			return fmt.Errorf("unexpected argument %q", args[n])
		}
		return nil
	}
}

// Output formats of -o/--output.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// outputFormat is the value of -o/--output; a value other than table,
// json or yaml is refused while the flags are parsed (a usage error).
type outputFormat string

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }
func (o *outputFormat) Set(v string) error {
	switch v {
	case formatTable, formatJSON, formatYAML:
		*o = outputFormat(v)
		return nil
	}
	return fmt.Errorf("use %s, %s or %s", formatTable, formatJSON, formatYAML)
}

// addOutputFlag adds -o/--output (default table) to a command that prints
// a result.
func addOutputFlag(fs *pflag.FlagSet) *outputFormat {
	o := outputFormat(formatTable)
	fs.VarP(&o, "output", "o", "output format: table, json or yaml (the same document as json)")
	return &o
}
