/* Helpers shared by the lab's C programs: the link emulator (impair/csrc/linkemu.c) and the
 * UDP prober (measure/probe/csrc/prober.c). Header only, each program being one translation
 * unit: define ANYLAB_PROGRAM (its name, for messages) before including it.
 *
 * - die(): print "PROGRAM: message" on stderr and exit 2;
 * - now_ns(), clock_ns(), to_timespec(): CLOCK_MONOTONIC (the lab's one clock) in ns;
 * - signal_fd(): SIGTERM, SIGINT and SIGHUP blocked and read from a signalfd (an event like
 *   any other in the epoll loop), SIGPIPE ignored;
 * - precise_timing(): wake-ups on time (timer slack 1 ns) and, with a priority > 0, a low
 *   real-time priority: under CPU load a normal task can wait a whole scheduler slice (ms)
 *   after its timer fires.
 */
#ifndef ANYLAB_H
#define ANYLAB_H

#ifndef ANYLAB_PROGRAM
#error "define ANYLAB_PROGRAM before including anylab.h"
#endif

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(ANYLAB_PROGRAM ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static inline int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static inline struct timespec to_timespec(int64_t ns)
{
	struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
	return ts;
}

static inline int signal_fd(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) die("signalfd: %s", strerror(errno));
	return fd;
}

static inline void precise_timing(int rt_priority)
{
	prctl(PR_SET_TIMERSLACK, 1UL); /* wake up on time, not 50 us late */
	if (rt_priority > 0) {
		struct sched_param sp = {.sched_priority = rt_priority};
		if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
			fprintf(stderr, ANYLAB_PROGRAM ": no real-time priority (%s), timing may "
				"stretch under load\n", strerror(errno));
	}
}

#endif
