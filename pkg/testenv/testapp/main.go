// Command testapp is the tiny program inside hemostat's offline test image (FROM scratch). Its flags make
// a container crash, leak memory, hog CPU, turn unhealthy or log fake secrets, so tests can use real
// containers without a registry.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		exitCode       = flag.Int("exit-code", 0, "exit with this code after -exit-after")
		exitAfter      = flag.Duration("exit-after", 0, "exit after this long (0: run until stopped)")
		cpu            = flag.Int("cpu", 0, "goroutines spinning on the CPU")
		cpuAfter       = flag.Duration("cpu-after", 0, "start spinning after this long")
		leakMBps       = flag.Int("leak-mb-per-s", 0, "grow memory by this many MiB per second")
		leakMax        = flag.Int("leak-max-mb", 0, "stop growing at this many MiB (0: until killed)")
		holdMB         = flag.Int("hold-mb", 0, "allocate and hold this many MiB at start")
		healthAddr     = flag.String("health-addr", "", "serve /health on this address")
		unhealthyAfter = flag.Duration("unhealthy-after", 0, "/health answers 500 after this long (0: never)")
		probe          = flag.String("probe", "", "healthcheck mode: GET this URL, exit 0 on 200, 1 otherwise")
		logSecrets     = flag.Bool("log-secrets", false, "write log lines that contain fake secrets")
		logEvery       = flag.Duration("log-every", 0, "write a log line this often")
		once           = flag.Bool("once", false, "misbehave (exit, leak, hog, turn unhealthy) only on the first start; later starts run quietly, as a fixed app would (-bad-starts 1)")
		badStarts      = flag.Int("bad-starts", 0, "misbehave only on the first N starts; later starts run quietly (0: on every start)")
		exitAgain      = flag.Duration("exit-again-after", 0, "with -bad-starts: on the first good start, exit with -exit-code after this long, once")
		ignoreTerm     = flag.Bool("ignore-sigterm", false, "ignore SIGTERM, so a stop waits for its timeout")
		say            = flag.String("say", "", "write this line to the log at the start (e.g. a prompt injection)")
	)
	flag.Parse()
	if *probe != "" {
		c := http.Client{Timeout: 2 * time.Second}
		r, err := c.Get(*probe)
		if err != nil || r.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if *once && *badStarts == 0 {
		*badStarts = 1
	}
	n := countStart()
	if *badStarts > 0 && n > *badStarts {
		// A good start: the app behaves, except for the one exit -exit-again-after asks for.
		*exitAfter, *cpu, *leakMBps, *unhealthyAfter = 0, 0, 0, 0
		if n == *badStarts+1 {
			*exitAfter = *exitAgain
		}
	}
	start := time.Now()
	fmt.Println("testapp started", strings.Join(os.Args[1:], " "), "(start", strconv.Itoa(n)+")")
	if *say != "" {
		fmt.Println(*say)
	}
	if *logSecrets {
		fmt.Println("connecting to postgres://app:hunter2@db:5432/app")
		fmt.Println("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
		fmt.Println("aws_access_key_id=AKIAIOSFODNN7EXAMPLE slack=xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx")
		fmt.Println("API_KEY=" + os.Getenv("API_KEY"))
		fmt.Fprintln(os.Stderr, "error: database connection refused")
	}
	var held [][]byte
	if *holdMB > 0 {
		held = append(held, touch(*holdMB<<20))
	}
	if *healthAddr != "" {
		go func() {
			http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
				if *unhealthyAfter > 0 && time.Since(start) > *unhealthyAfter {
					http.Error(w, "unhealthy", http.StatusInternalServerError)
					return
				}
				fmt.Fprintln(w, "ok")
			})
			if err := http.ListenAndServe(*healthAddr, nil); err != nil {
				fmt.Fprintln(os.Stderr, "health server:", err)
			}
		}()
	}
	if *cpu > 0 {
		for range *cpu {
			go func() {
				time.Sleep(*cpuAfter)
				x := 0
				for {
					x++
				}
			}()
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	var exit <-chan time.Time
	if *exitAfter > 0 {
		exit = time.After(*exitAfter)
	}
	var leak <-chan time.Time
	if *leakMBps > 0 {
		t := time.NewTicker(100 * time.Millisecond)
		leak = t.C
	}
	var logs <-chan time.Time
	if *logEvery > 0 {
		logs = time.NewTicker(*logEvery).C
	}
	leaked := 0
	for {
		select {
		case s := <-sig:
			fmt.Println("testapp got", s)
			os.Exit(128 + int(s.(syscall.Signal)))
		case <-exit:
			fmt.Fprintln(os.Stderr, "testapp exiting with", *exitCode)
			os.Exit(*exitCode)
		case <-leak:
			step := *leakMBps << 20 / 10
			if *leakMax == 0 || leaked+step <= *leakMax<<20 {
				held = append(held, touch(step))
				leaked += step
			}
		case <-logs:
			fmt.Println("tick", time.Since(start).Round(time.Millisecond), len(held))
		}
	}
}

// startsFile counts the container's starts. The container's writable layer survives a restart, so the
// count does too.
const startsFile = "/starts"

// countStart records one more start and returns its number, 1 for the first.
func countStart() int {
	n := 0
	if b, err := os.ReadFile(startsFile); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	n++
	if err := os.WriteFile(startsFile, []byte(strconv.Itoa(n)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "count start:", err)
	}
	return n
}

// touch allocates n bytes and writes every page so they count as resident.
func touch(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}
