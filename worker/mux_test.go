package worker

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func testMux() *Mux {
	m := NewMux()
	ok := func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }
	m.Handle("/test/", ok)
	m.Handle("/test1/", ok)
	m.Handle("/users/{id}", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("user " + ctx.UserValue("id").(string)) })
	m.Handle("/users/{id}/posts/{post}/", ok)
	return m
}

func TestMuxRoute(t *testing.T) {
	m := testMux()
	for name, tc := range map[string]struct {
		path, endpoint string
		status         int
		body, location string
	}{
		"exact":               {"/test/", "/test/", 200, "ok", ""},
		"bare redirects":      {"/test", "/test", 301, "", "/test/"},
		"bare redirects too":  {"/test1", "/test1", 301, "", "/test1/"},
		"query kept":          {"/test?a=1", "/test", 301, "", "/test/?a=1"},
		"unknown":             {"/nope", Unmatched, 404, "Not Found", ""},
		"deeper":              {"/test/x", Unmatched, 404, "Not Found", ""},
		"root":                {"/", Unmatched, 404, "Not Found", ""},
		"template":            {"/users/42", "/users/{id}", 200, "user 42", ""},
		"template trailing":   {"/users/42/", Unmatched, 404, "Not Found", ""},
		"template empty":      {"/users/", Unmatched, 404, "Not Found", ""},
		"two params":          {"/users/1/posts/2/", "/users/{id}/posts/{post}/", 200, "ok", ""},
		"two params bare":     {"/users/1/posts/2", Unmatched, 404, "Not Found", ""},
		"dot segments folded": {"/x/../test/", "/test/", 200, "ok", ""},
	} {
		t.Run(name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(tc.path)
			endpoint, h := m.Route(&ctx)
			h(&ctx)
			if endpoint != tc.endpoint {
				t.Errorf("endpoint %q, want %q", endpoint, tc.endpoint)
			}
			if got := ctx.Response.StatusCode(); got != tc.status {
				t.Errorf("status %d, want %d", got, tc.status)
			}
			if tc.body != "" && string(ctx.Response.Body()) != tc.body {
				t.Errorf("body %q, want %q", ctx.Response.Body(), tc.body)
			}
			if loc := string(ctx.Response.Header.Peek("Location")); loc != tc.location {
				t.Errorf("Location %q, want %q", loc, tc.location)
			}
		})
	}
}

// The "two params bare" case above shows a template ending in "/" does not
// redirect; that is by design: only exact patterns get the slash redirect.
// Here the bare form of an exact pattern that is registered explicitly wins
// over the automatic redirect.
func TestMuxExplicitBeatsRedirect(t *testing.T) {
	m := NewMux()
	m.Handle("/a/", func(ctx *fasthttp.RequestCtx) {})
	m.Handle("/a", func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) })
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/a")
	ep, h := m.Route(&ctx)
	h(&ctx)
	if ep != "/a" || ctx.Response.StatusCode() != 204 {
		t.Errorf("got %q %d, want the explicit /a handler", ep, ctx.Response.StatusCode())
	}
}

func TestMuxHandlePanics(t *testing.T) {
	for name, pattern := range map[string]string{
		"no slash":       "test/",
		"space":          "/a b",
		"separator":      "/a|b",
		"mixed param":    "/a{id}",
		"duplicate":      "/test/",
		"label collides": "/" + Unmatched,
	} {
		t.Run(name, func(t *testing.T) {
			m := testMux()
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%q) did not panic", pattern)
				}
			}()
			m.Handle(pattern, func(*fasthttp.RequestCtx) {})
		})
	}
}

func TestMethod(t *testing.T) {
	for in, want := range map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH",
		"DELETE": "DELETE", "OPTIONS": "OPTIONS", "CONNECT": "CONNECT", "TRACE": "TRACE",
		"get": "OTHER", "BREW": "OTHER", "": "OTHER", "G\xc3\x89T": "OTHER",
	} {
		if got := Method([]byte(in)); got != want {
			t.Errorf("Method(%q) = %q, want %q", in, got, want)
		}
	}
}
