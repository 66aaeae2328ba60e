// Package e2e holds cross-package tests only: the import-policy check, and
// (as the stages land) the extract → train → export round trip.
package e2e
