// Command hemostat watches Docker containers and heals the unhealthy ones carefully.
package main

import (
	"os"

	"github.com/hemostat/hemostat/cmd"
)

func main() { os.Exit(cmd.Main()) }
