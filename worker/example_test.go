package worker_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/forkwatch/forkwatch/worker"
)

// printRecorder shows what a Recorder receives; an application plugs in
// statsd.Client here (see cmd/webapp).
type printRecorder struct{}

func (printRecorder) Record(method, endpoint string, status int, _ time.Duration) {
	fmt.Println(method, endpoint, status)
}

// Any fasthttp handler can be served with the recording middleware: register
// it on a Mux under a route template (the endpoint label), or wrap a single
// handler with worker.Single.
func Example() {
	mux := worker.NewMux()
	mux.Handle("/orders/{id}", func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintf(ctx, "order %s", ctx.UserValue("id"))
	})
	srv, err := worker.New(mux, worker.Options{Recorder: printRecorder{}})
	if err != nil {
		panic(err)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	for _, path := range []string{"/orders/7", "/orders/8", "/admin"} {
		status, body, _ := fasthttp.Get(nil, "http://"+ln.Addr().String()+path)
		fmt.Println(status, string(body))
	}
	// Output:
	// GET /orders/{id} 200
	// 200 order 7
	// GET /orders/{id} 200
	// 200 order 8
	// GET unmatched 404
	// 404 Not Found
}
