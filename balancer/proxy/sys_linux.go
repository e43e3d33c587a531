//go:build linux

package proxy

import (
	"syscall"
	"unsafe"
)

// The event loop's system calls. Every socket it touches is non-blocking,
// so reads and writes go through RawSyscall: they never block, and skipping
// the scheduler's syscall bookkeeping is measurable at two calls a request.

const epollET = 1 << 31 // EPOLLET as an unsigned mask

// eventMask is what every proxied socket is registered for, edge-triggered:
// readiness is remembered in the connection and cleared by a short read or
// EAGAIN.
const eventMask = syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// rawPeek looks at the next byte waiting on fd without taking it: 1 when
// one is there, 0 at EOF, else EAGAIN or another error.
func rawPeek(fd int) (int, syscall.Errno) {
	var b [1]byte
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

// rawWrite sends with MSG_NOSIGNAL: a peer that closed its end gets EPIPE
// back, never a SIGPIPE.
func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		syscall.MSG_NOSIGNAL, 0, 0)
	return int(n), e
}

// rawWritev sends a then b in one call, as rawWrite does (b may be empty).
func rawWritev(fd int, a, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return rawWrite(fd, a)
	}
	if len(a) == 0 {
		return rawWrite(fd, b)
	}
	iov := [2]syscall.Iovec{{Base: &a[0]}, {Base: &b[0]}}
	iov[0].SetLen(len(a))
	iov[1].SetLen(len(b))
	msg := syscall.Msghdr{Iov: &iov[0], Iovlen: 2}
	n, _, e := syscall.RawSyscall(syscall.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), syscall.MSG_NOSIGNAL)
	return int(n), e
}

// epollAdd registers fd with data {fd, gen}: gen tells a stale event for a
// closed descriptor from one for a new socket that got the same number.
func epollAdd(ep, fd int, events uint32, gen int32) error {
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd), Pad: gen}
	return syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// sockError returns a connecting socket's pending error (SO_ERROR).
func sockError(fd int) error {
	v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
	if err != nil {
		return err
	}
	if v != 0 {
		return syscall.Errno(v)
	}
	return nil
}
