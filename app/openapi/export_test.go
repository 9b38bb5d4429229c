package openapi

// Assemble is assemble, for the tests.
var Assemble = assemble
