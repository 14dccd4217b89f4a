package cmd_test

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/hemostat/hemostat/cmd"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"hemostat": func() { os.Exit(cmd.Main()) },
	})
}

// TestScripts runs the CLI end to end over the real root command: testdata/script/*.txtar.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("HEMOSTAT_TEST_REDIS_URL", os.Getenv(testenv.RedisURLEnv))
			return nil
		},
	})
}
