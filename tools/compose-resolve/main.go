// compose-resolve prints the model `docker compose --profile X config` would run, as JSON,
// using Compose's own loader (github.com/compose-spec/compose-go/v2), without a Docker engine.
//
//	compose-resolve -f docker-compose.yml [-f overlay.yml] --env-file .env.example [--profile P]
//
// Interpolation reads only the given env files (never this process's environment), so the
// result depends on the files alone. Profiles filter services as compose does; depends_on
// entries marked `required: false` whose service is not enabled are dropped, as compose does.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var files, envFiles, profiles multi
	flag.Var(&files, "f", "compose file (repeatable, in order)")
	flag.Var(&envFiles, "env-file", "env file for interpolation (repeatable)")
	flag.Var(&profiles, "profile", "profile to enable (repeatable)")
	name := flag.String("project-name", "dataplatform", "project name")
	flag.Parse()
	if len(files) == 0 {
		fmt.Fprintln(os.Stderr, "compose-resolve: at least one -f file is needed")
		os.Exit(2)
	}
	workdir, err := filepath.Abs(filepath.Dir(files[0]))
	if err != nil {
		fail(err)
	}
	options, err := cli.NewProjectOptions(
		files,
		cli.WithName(*name),
		cli.WithWorkingDirectory(workdir),
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithProfiles(profiles),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-resolve:", err)
	os.Exit(1)
}
