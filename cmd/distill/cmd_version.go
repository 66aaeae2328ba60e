package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// version is the tool version; release builds may override it with
// -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func init() {
	register(&command{
		Name:      "version",
		UsageLine: "",
		Short:     "print the tool version",
		Long:      "Print distill's version, the Go version it was built with and the VCS revision when known.",
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			return func(_ context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("version takes no arguments")
				}
				rev := ""
				if bi, ok := debug.ReadBuildInfo(); ok {
					for _, s := range bi.Settings {
						if s.Key == "vcs.revision" {
							rev = " " + s.Value
						}
					}
				}
				fmt.Fprintf(cmdOut, "distill %s (%s %s/%s%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, rev)
				return nil
			}
		},
	})
}
