package config_test

import (
	"fmt"

	"github.com/danemilter/danemilter/config"
)

func ExampleParseListen() {
	for _, s := range []string{"unix:/run/danemilter.sock", "inet:127.0.0.1:10025", "inet:10025@127.0.0.1"} {
		network, address, _ := config.ParseListen(s)
		fmt.Println(network, address)
	}
	// Output:
	// unix /run/danemilter.sock
	// tcp 127.0.0.1:10025
	// tcp 127.0.0.1:10025
}

func ExampleParse() {
	_, err := config.Parse("danemilter.toml", []byte("[dns]\nresolvers = [\"127.0.0.1\"]\ntimeuot = \"2s\"\n"))
	fmt.Println(err)
	// Output:
	// config: danemilter.toml:3: unknown key "dns.timeuot"
}
