//go:build !linux

package main

// The balancer runs on Linux only: its proxy is an epoll event loop and its
// workers die with it through the parent-death signal. This declaration
// names an identifier that exists nowhere, so building for another system
// stops with "undefined: balancer_requires_linux".
const _ = balancer_requires_linux
