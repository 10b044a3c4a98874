// Package zones chooses the instance that serves a request, and will hold
// zone state and instance health.
package zones
