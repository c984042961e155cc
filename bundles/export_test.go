package bundles

// RunTests runs a bundle's tests as an engine does.
var RunTests = runTests
