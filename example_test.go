package forkwatch_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/forkwatch/forkwatch"
	"github.com/forkwatch/forkwatch/supervisor"
	"github.com/forkwatch/forkwatch/worker"
)

// shop is a user's own fasthttp app, served by forkwatch.
func shop(args []string) forkwatch.App {
	return forkwatch.App{
		Name: "shop",
		Routes: func() (worker.Routes, error) {
			m := worker.NewMux()
			m.Handle("/hello/", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("hello from a forkwatch worker") })
			return m, nil
		},
		Args: args,
		// Settings in code; the command line and FORKWATCH_* override them.
		Defaults: func(o *forkwatch.Options) { o.Workers = 2; o.Grace = time.Second },
		// Any fasthttp.Server setting Options do not name.
		Server: func(s *fasthttp.Server) { s.Name = "shop" },
	}
}

// TestMain plays a worker when the example's supervisor re-executes this
// test binary: the way a real program's main is both.
func TestMain(m *testing.M) {
	if supervisor.IsChild() {
		os.Exit(forkwatch.Main(shop(os.Args[1:])))
	}
	os.Exit(m.Run())
}

// Example runs a fasthttp app as a prefork server: a supervisor and two
// workers (this test binary, re-executed), then stops it as a SIGTERM does.
func Example() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	// -no-metrics: this example sends nothing to whatever exporter runs here.
	args := []string{"-listen", addr, "-no-metrics", "-log-level", "error"}
	done := make(chan int, 1)
	go func() { done <- forkwatch.Main(shop(args)) }()

	var body []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/hello/")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Println(resp.StatusCode, resp.Header.Get("Server"), string(body))
			break
		}
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM) // the supervisor drains its workers
	fmt.Println("exit code", <-done)
	// Output:
	// 200 shop hello from a forkwatch worker
	// exit code 0
}
