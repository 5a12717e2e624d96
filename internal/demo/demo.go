// Package demo is forkwatch's demo application, the Flask demo's routes:
// GET /test/ -> 200 "rest"; /test1/ -> the handler divides by zero, and the
// recovered panic is a 500 whose body is the error text; /test and /test1 ->
// 301 to the slash form; anything else -> 404. cmd/webapp serves them;
// fwctl load uses them to know which endpoint label a path is counted under.
package demo

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/forkwatch/forkwatch/worker"
)

// Routes are the demo's routes.
func Routes() (worker.Routes, error) {
	m := worker.NewMux()
	m.Handle("/test/", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("rest")
	})
	m.Handle("/test1/", func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString(strconv.Itoa(1 / zero)) // panics: the middleware answers 500
	})
	return m, nil
}

// zero is a variable so that the division in /test1/ happens at run time.
var zero = 0

// Endpoint is the endpoint label the demo counts a request for path under.
func Endpoint(path string) string {
	r, err := Routes()
	if err != nil {
		return "?"
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(path)
	ep, _ := r.Route(&ctx)
	return ep
}
