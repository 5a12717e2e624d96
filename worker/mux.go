package worker

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"
)

// Unmatched is the endpoint label of every request no route matched, and of
// requests the HTTP layer rejected before routing (400, 408, 413, 431).
const Unmatched = "unmatched"

// Routes finds the handler for a request and names its endpoint label. The
// label must come from a fixed set (route templates, never raw paths) so a
// client cannot create unbounded metric series.
type Routes interface {
	Route(ctx *fasthttp.RequestCtx) (endpoint string, h fasthttp.RequestHandler)
}

// Single is a Routes that sends every request to one handler under one
// endpoint label; it adapts any plain fasthttp.RequestHandler.
func Single(endpoint string, h fasthttp.RequestHandler) Routes { return single{endpoint, h} }

type single struct {
	endpoint string
	h        fasthttp.RequestHandler
}

func (s single) Route(*fasthttp.RequestCtx) (string, fasthttp.RequestHandler) { return s.endpoint, s.h }

// Mux routes by path. Patterns are exact paths ("/test/") or templates whose
// segments may be parameters ("/users/{id}"); a parameter matches one
// non-empty segment and is stored with ctx.SetUserValue. The endpoint label
// of a request is the pattern it matched.
//
// Like Flask's strict slashes, a pattern ending in "/" also answers the path
// without the slash with a 301 to the slash form, under the endpoint label of
// the path without the slash ("/test"). Everything else gets 404 under the
// label Unmatched. Methods are not routed: a handler checks them itself.
type Mux struct {
	exact     map[string]*route
	templates []*route
}

type route struct {
	pattern  string
	segs     []string // for templates; paramSeg marks a parameter
	params   []string // parameter names, in order
	h        fasthttp.RequestHandler
	redirect bool // added for a slash pattern, replaced by an explicit one
}

// paramSeg stands for a parameter segment; no literal segment contains "{".
const paramSeg = "{}"

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{exact: make(map[string]*route)} }

// Handle registers h for pattern. It panics on a malformed or duplicate
// pattern, which is a programming error found at start-up.
func (m *Mux) Handle(pattern string, h fasthttp.RequestHandler) {
	r, err := parsePattern(pattern)
	if err != nil {
		panic(err)
	}
	r.h = h
	if r.segs == nil {
		if old, ok := m.exact[pattern]; ok && !old.redirect {
			panic(fmt.Sprintf("worker: pattern %q registered twice", pattern))
		}
		m.exact[pattern] = r
		if bare := strings.TrimSuffix(pattern, "/"); bare != pattern && bare != "" {
			if _, taken := m.exact[bare]; !taken {
				m.exact[bare] = &route{pattern: bare, h: redirectTo(pattern), redirect: true}
			}
		}
		return
	}
	for _, t := range m.templates {
		if t.pattern == pattern {
			panic(fmt.Sprintf("worker: pattern %q registered twice", pattern))
		}
	}
	m.templates = append(m.templates, r)
}

// Route implements Routes.
func (m *Mux) Route(ctx *fasthttp.RequestCtx) (string, fasthttp.RequestHandler) {
	path := ctx.Path()
	if r, ok := m.exact[string(path)]; ok {
		return r.pattern, r.h
	}
	for _, r := range m.templates {
		if vals, ok := r.match(path); ok {
			for i, name := range r.params {
				ctx.SetUserValue(name, vals[i])
			}
			return r.pattern, r.h
		}
	}
	return Unmatched, notFound
}

// Endpoints lists every endpoint label the Mux can produce, Unmatched last.
func (m *Mux) Endpoints() []string {
	var out []string
	for p := range m.exact {
		out = append(out, p)
	}
	for _, r := range m.templates {
		out = append(out, r.pattern)
	}
	return append(out, Unmatched)
}

func parsePattern(p string) (*route, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("worker: pattern %q must start with /", p)
	}
	if p == "/"+Unmatched {
		return nil, fmt.Errorf("worker: pattern %q collides with the %q label", p, Unmatched)
	}
	for _, c := range []byte(p) {
		if c < 0x21 || c > 0x7e || strings.IndexByte(`|#,:"\`, c) >= 0 {
			return nil, fmt.Errorf("worker: pattern %q has a byte (%q) not allowed in a label", p, c)
		}
	}
	r := &route{pattern: p}
	if !strings.Contains(p, "{") {
		return r, nil
	}
	r.segs = strings.Split(p[1:], "/")
	for i, s := range r.segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) > 2 {
			r.params = append(r.params, s[1:len(s)-1])
			r.segs[i] = paramSeg
		} else if strings.ContainsAny(s, "{}") {
			return nil, fmt.Errorf("worker: pattern %q: segment %q mixes text and a parameter", p, s)
		}
	}
	return r, nil
}

// match reports whether path fits the template and returns its parameters.
func (r *route) match(path []byte) ([]string, bool) {
	if len(path) == 0 || path[0] != '/' {
		return nil, false
	}
	rest := path[1:]
	var vals []string
	for i, seg := range r.segs {
		part, last := rest, i == len(r.segs)-1
		if j := bytes.IndexByte(rest, '/'); j >= 0 {
			if last {
				return nil, false // the path has more segments
			}
			part, rest = rest[:j], rest[j+1:]
		} else if !last {
			return nil, false // the path has fewer segments
		}
		switch {
		case seg == paramSeg:
			if len(part) == 0 {
				return nil, false
			}
			vals = append(vals, string(part))
		case string(part) != seg:
			return nil, false
		}
	}
	return vals, true
}

func redirectTo(target string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		loc := target
		if q := ctx.URI().QueryString(); len(q) > 0 {
			loc += "?" + string(q)
		}
		ctx.Response.Header.Set(fasthttp.HeaderLocation, loc)
		ctx.SetStatusCode(fasthttp.StatusMovedPermanently)
	}
}

func notFound(ctx *fasthttp.RequestCtx) {
	ctx.Error("Not Found", fasthttp.StatusNotFound)
}
