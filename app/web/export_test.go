package web

import "net/http"

// Test serves one request in memory, without a network listener. It gives
// up after 30 seconds.
func (s *Server) Test(req *http.Request) (*http.Response, error) {
	return s.app.Test(req, 30_000)
}

// Routes returns the declared routes as "METHOD path", for the tests that
// must cover every route. The HEAD routes Fiber adds for each GET route and
// the middleware are left out.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.app.GetRoutes(true) {
		if r.Method != "HEAD" {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}
