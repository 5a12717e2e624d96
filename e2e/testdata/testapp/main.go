// Command testapp is a prefork app for the supervisor tests: besides /test/
// it has a handler that blocks forever (/hang/), one that exits the worker
// (/crash/) and one that takes a while
// (/slow/?ms=N), each saying on stderr when it starts, and TESTAPP_FAIL makes its start-up fail with that text.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/forkwatch/forkwatch"
	"github.com/forkwatch/forkwatch/worker"
)

func main() {
	os.Exit(forkwatch.Main(forkwatch.App{Name: "testapp", Routes: routes}))
}

func routes() (worker.Routes, error) {
	if msg := os.Getenv("TESTAPP_FAIL"); msg != "" {
		return nil, errors.New(msg)
	}
	m := worker.NewMux()
	m.Handle("/test/", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("rest") })
	m.Handle("/hang/", func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintln(os.Stderr, "hang request started")
		select {}
	})
	m.Handle("/crash/", func(ctx *fasthttp.RequestCtx) { os.Exit(3) })
	m.Handle("/slow/", func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintln(os.Stderr, "slow request started")
		ms, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("ms")))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		ctx.SetBodyString("slow")
	})
	return m, nil
}
