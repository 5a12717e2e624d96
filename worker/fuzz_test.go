package worker

import (
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// fuzzPatterns is the Mux under fuzz: exact paths with their slash
// redirects, and templates that overlap.
var fuzzPatterns = []string{"/test/", "/test1/", "/a/b", "/users/{id}", "/users/{id}/posts/{post}", "/{any}/x"}

// templateRegexp is an independent oracle for a template: each {name}
// matches one non-empty segment.
func templateRegexp(p string) *regexp.Regexp {
	q := regexp.QuoteMeta(p)
	q = regexp.MustCompile(`\\\{[a-z]+\\\}`).ReplaceAllString(q, `([^/]+)`)
	return regexp.MustCompile("^" + q + "$")
}

// FuzzMux sends arbitrary request targets through a Mux: the endpoint label
// is always a registered pattern or Unmatched (never anything from the
// path), a template's parameters rebuild the path exactly, and a request is
// Unmatched only when no pattern fits.
//
// go test -fuzz=FuzzMux ./worker (make fuzz runs it longer).
func FuzzMux(f *testing.F) {
	for _, s := range []string{
		"/test/", "/test", "/test1/?q=1", "/a/b", "/a/b/", "/users/42", "/users/", "/users//posts/1",
		"/users/42/posts/7", "/users/%2F/posts/x", "/users/a%2Fb", "/../test/", "/test/../a/b",
		"//test/", "*", "http://host/test/", "/\xff\xfe%00%0a", "/x|c|#evil:1", "/%7C%23%2C%3A",
		"/q/x", "/users/42/x", "/test/\r\nX: y", "", "?", "/" + strings.Repeat("a/", 100),
	} {
		f.Add(s)
	}
	m := NewMux()
	labels := map[string]bool{}
	var templates []*regexp.Regexp
	for _, p := range fuzzPatterns {
		m.Handle(p, func(*fasthttp.RequestCtx) {})
		if strings.Contains(p, "{") {
			templates = append(templates, templateRegexp(p))
		}
	}
	for _, e := range m.Endpoints() {
		labels[e] = true
	}
	f.Fuzz(func(t *testing.T, target string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(target)
		path := string(ctx.Path())
		endpoint, h := m.Route(&ctx)
		if h == nil {
			t.Fatalf("%q: nil handler", target)
		}
		if !labels[endpoint] {
			t.Fatalf("%q (path %q): endpoint %q is not a registered label", target, path, endpoint)
		}
		var fits []int
		for i, re := range templates {
			if re.MatchString(path) {
				fits = append(fits, i)
			}
		}
		switch {
		case endpoint == Unmatched:
			if _, ok := m.exact[path]; ok || len(fits) > 0 {
				t.Fatalf("%q: path %q is Unmatched but fits a pattern", target, path)
			}
		case !strings.Contains(endpoint, "{"):
			if endpoint != path {
				t.Fatalf("%q: exact endpoint %q for path %q", target, endpoint, path)
			}
		default:
			if _, ok := m.exact[path]; ok {
				t.Fatalf("%q: path %q is exact but routed to template %q", target, path, endpoint)
			}
			rebuilt := endpoint
			for _, name := range []string{"id", "post", "any"} {
				if v, ok := ctx.UserValue(name).(string); ok && strings.Contains(rebuilt, "{"+name+"}") {
					if v == "" || strings.Contains(v, "/") {
						t.Fatalf("%q: parameter %s = %q", target, name, v)
					}
					rebuilt = strings.Replace(rebuilt, "{"+name+"}", v, 1)
				}
			}
			if rebuilt != path {
				t.Fatalf("%q: template %q with its parameters is %q, path is %q", target, endpoint, rebuilt, path)
			}
		}
	})
}

// FuzzPattern registers arbitrary patterns: Handle either panics (a
// programming error found at start-up) or accepts a pattern that is a safe
// label as it is.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"/ok/", "/{id}", "/a/{b}/c", "/a|b", "/a b", "/é", "x", "/{}", "/a{b}", "/unmatched", "/a,b:c#d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		defer func() { _ = recover() }()
		NewMux().Handle(p, func(*fasthttp.RequestCtx) {})
		if p == "" || p[0] != '/' || p == "/"+Unmatched {
			t.Fatalf("pattern %q accepted", p)
		}
		for i := 0; i < len(p); i++ {
			if c := p[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`|#,:"\`, c) >= 0 {
				t.Fatalf("pattern %q accepted with byte %q", p, c)
			}
		}
	})
}

// FuzzMethod: whatever method a client sends, the label is one of ten.
func FuzzMethod(f *testing.F) {
	for _, s := range []string{"GET", "get", "BREW", "G\xc3\x89T", "", "GET|c", strings.Repeat("X", 40)} {
		f.Add([]byte(s))
	}
	allowed := map[string]bool{"OTHER": true}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"} {
		allowed[m] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Method(b)
		if !allowed[got] {
			t.Fatalf("Method(%q) = %q", b, got)
		}
		if got != "OTHER" && got != string(b) {
			t.Fatalf("Method(%q) = %q: a standard method must map to itself", b, got)
		}
		if got == "OTHER" && allowed[string(b)] && string(b) != "OTHER" {
			t.Fatalf("Method(%q) = OTHER for a standard method", b)
		}
	})
}
