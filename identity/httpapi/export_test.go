package httpapi

// Routes lists the endpoints as "METHOD /path/{param}".
func Routes() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.method + " " + rt.path
	}
	return out
}
