package cmd_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/hemostat/hemostat/cmd"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"hemostat": func() { os.Exit(cmd.Main()) },
	})
}

// TestScripts runs the CLI end to end over the real root command: testdata/script/*.txtar. With the test
// redis-server, each script gets a database of its own in $REDIS_URL (host:port in $REDIS_ADDR), the
// condition [redis] holds, and the command `redis ARGS...` runs one Redis command on that database.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("HEMOSTAT_TEST_REDIS_URL", os.Getenv(testenv.RedisURLEnv))
			if os.Getenv(testenv.RedisURLEnv) == "" {
				return nil
			}
			url, release, err := testenv.NewRedisDB()
			if err != nil {
				return err
			}
			e.Defer(release)
			opt, err := redis.ParseURL(url)
			if err != nil {
				return err
			}
			e.Setenv("REDIS_URL", url)
			e.Setenv("REDIS_ADDR", opt.Addr)
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond != "redis" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if os.Getenv(testenv.RedisURLEnv) == "" && testenv.InCI() {
				return false, fmt.Errorf("%s is not set under CI", testenv.RedisURLEnv)
			}
			return os.Getenv(testenv.RedisURLEnv) != "", nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"redis": redisCmd,
		},
	})
}

// redisCmd runs one command on the script's database and prints the reply.
func redisCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: redis COMMAND [ARGS...]")
	}
	opt, err := redis.ParseURL(ts.Getenv("REDIS_URL"))
	if err != nil {
		ts.Fatalf("redis: %v", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	argv := make([]any, len(args))
	for i, a := range args {
		argv[i] = a
	}
	v, err := c.Do(ctx, argv...).Result()
	if (err != nil) != neg {
		ts.Fatalf("redis %v: %v", args, err)
	}
	fmt.Fprintln(ts.Stdout(), v)
}
