package web

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
