package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/distill-ml/distill/train/gemm"
	"github.com/spf13/pflag"
)

// Exit codes, listed in the top-level help.
const (
	exitOK          = 0
	exitFailure     = 1 // the command ran and failed
	exitUsage       = 2 // bad flags or arguments
	exitInterrupted = 130
)

// envGEMM names the environment variable that forces a GEMM kernel
// (avx512, avx2 or generic) for the student math.
const envGEMM = "DISTILL_GEMM"

// errUsage marks an error as a usage error (exit 2).
var errUsage = errors.New("usage")

// usageError wraps a message as a usage error.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// command is one subcommand: its flags, help text and entry point.
type command struct {
	Name      string
	UsageLine string // after "distill NAME"
	Short     string
	Long      string
	// Flags registers the command's flags and returns the function that runs
	// it with the positional arguments once the flags are parsed.
	Flags func(fs *pflag.FlagSet) func(ctx context.Context, args []string) error
}

var commands = map[string]*command{}

// cmdOut and cmdErr are where commands write their output and notes; run
// sets them to its writers so tests can capture them.
var cmdOut, cmdErr io.Writer = os.Stdout, os.Stderr

func register(c *command) { commands[c.Name] = c }

func main() {
	log.SetFlags(0)
	log.SetPrefix("distill: ")
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmdOut, cmdErr = stdout, stderr
	if len(args) == 0 {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "distill: missing command (one of %s); run 'distill --help' for what each does\n", strings.Join(names, ", "))
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1 {
		topUsage(stdout)
		return exitOK
	}
	name := args[0]
	if name == "help" {
		name, args = args[1], []string{args[1], "--help"}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "distill: unknown command %q; run 'distill --help' for the list\n", name)
		return exitUsage
	}
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	runFn := c.Flags(fs)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: distill %s %s\n\n%s\n", c.Name, c.UsageLine, strings.TrimSpace(c.Long))
		if fs.HasFlags() {
			fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
		}
	}
	// pflag would print the usage itself on every parse error; the help
	// goes to stdout once, and an error gets one line ending in a pointer
	// to the help.
	fs.Usage = func() {}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "distill %s: %v (run 'distill %s --help' for usage)\n", c.Name, err, c.Name)
		return exitUsage
	}
	// The one environment setting of the student math: DISTILL_GEMM forces
	// a matrix-product kernel (see train/gemm).
	if err := gemm.SetKernel(os.Getenv(envGEMM)); err != nil {
		fmt.Fprintf(stderr, "distill: warning: %s=%s: %v; using %s\n", envGEMM, os.Getenv(envGEMM), err, gemm.Kernel())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first Ctrl-C the command winds down cleanly; restoring
		// the default handler lets a second one kill it at once.
		<-ctx.Done()
		stop()
	}()
	err := runFn(ctx, fs.Args())
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "distill %s: %s (run 'distill %s --help' for usage)\n", c.Name, strings.TrimPrefix(err.Error(), "usage: "), c.Name)
		return exitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "distill %s: interrupted: %v\n", c.Name, err)
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "distill %s: %v\n", c.Name, err)
		return exitFailure
	}
}

func topUsage(w io.Writer) {
	fmt.Fprint(w, `distill: offline knowledge distillation from ONNX teachers.

Usage: distill COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Short)
	}
	fmt.Fprint(w, `
Run 'distill COMMAND --help' for a command's flags.

Environment: DISTILL_GEMM=avx512|avx2|generic forces the matrix-product
kernel of train and eval (default: the best this CPU runs);
ONNXRUNTIME_SHARED_LIBRARY_PATH names the onnxruntime library.

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.
`)
}
