// Command fastprefork is the yardstick `make bench` holds forkwatch against:
// fasthttp's own prefork package (github.com/valyala/fasthttp/prefork)
// serving the webapp's demo routes with a plain switch and no metrics, no
// supervision beyond prefork's respawn, no middleware.
//
//	fastprefork -listen 127.0.0.1:5103 -children 5
//
// By default the server has the same fasthttp.Server limits as forkwatch's
// workers (read, write and idle timeouts, header buffer, body size,
// concurrency: worker.Default*), which a production prefork server needs
// against slow or hostile clients, so that the comparison isolates what
// forkwatch adds: the supervisor, the Mux and the middleware. -bare serves
// with fasthttp's zero settings instead.
//
// Routes, as cmd/webapp: GET /test/ -> 200 "rest"; /test1/ -> 500
// "runtime error: integer divide by zero"; /test and /test1 -> 301 to the
// slash form; anything else -> 404.
//
// prefork starts one child per GOMAXPROCS of the master and runs each child
// with GOMAXPROCS 1; -children sets the master's GOMAXPROCS for that. The
// master does not handle SIGTERM: it dies, and the launcher that started it
// (launch.Process.Stop) kills its process group, the children with it.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"

	"github.com/forkwatch/forkwatch/worker"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/prefork"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:5103", "`address` to serve")
	children := flag.Int("children", 5, "child processes")
	bare := flag.Bool("bare", false, "fasthttp's zero settings instead of forkwatch's worker limits")
	flag.Parse()
	if *children < 1 {
		fmt.Fprintln(os.Stderr, "fastprefork: -children must be >= 1")
		os.Exit(2)
	}
	if !prefork.IsChild() {
		runtime.GOMAXPROCS(*children)
	}
	srv := &fasthttp.Server{Handler: handle, NoDefaultServerHeader: true}
	if !*bare {
		srv.ReadTimeout = worker.DefaultReadTimeout
		srv.WriteTimeout = worker.DefaultWriteTimeout
		srv.IdleTimeout = worker.DefaultIdleTimeout
		srv.ReadBufferSize = worker.DefaultMaxHeaderBytes
		srv.MaxRequestBodySize = worker.DefaultMaxBodyBytes
		srv.Concurrency = worker.DefaultMaxConns
	}
	p := prefork.New(srv)
	// A child whose master is gone would serve on alone.
	p.OnMasterDeath = func() { os.Exit(1) }
	if err := p.ListenAndServe(*addr); err != nil {
		log.Printf("fastprefork: %v", err)
		os.Exit(1)
	}
}

func handle(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("Method Not Allowed", fasthttp.StatusMethodNotAllowed)
		return
	}
	switch string(ctx.Path()) {
	case "/test/":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("rest")
	case "/test1/":
		ctx.Error("runtime error: integer divide by zero", fasthttp.StatusInternalServerError)
	case "/test", "/test1":
		ctx.Response.Header.Set(fasthttp.HeaderLocation, string(ctx.Path())+"/")
		ctx.SetStatusCode(fasthttp.StatusMovedPermanently)
	default:
		ctx.Error("Not Found", fasthttp.StatusNotFound)
	}
}
