/*
 * udpgen: paced UDP load between two network namespaces, counting what arrives.
 *
 * One process: the receiving socket is opened in --dst-ns, the sending one in
 * --src-ns; a thread drains the receiver with recvmmsg while the main thread
 * sends with sendmmsg at --pps (one datagram per slot up to 5,000/s, 1 ms
 * slices above). Each datagram carries its sequence number and CLOCK_MONOTONIC
 * send time, so the receiver gets one-way delays. Prints one JSON line.
 *
 * usage: udpgen --src-ns PATH --dst-ns PATH --dst IP [--port N] [--pps N]
 *               [--seconds S] [--size BYTES] [--drain-ms MS] [--rt-priority N]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXSZ 1472

static atomic_int stop_rx;
static int64_t *delay; /* per sequence number; -1 until received */
static uint64_t total, received, dups, reordered;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int socket_in(const char *ns)
{
	int fd = open(ns, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) { perror(ns); exit(2); }
	close(fd);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) { perror("socket"); exit(2); }
	return s;
}

static void *receiver(void *arg)
{
	int fd = *(int *)arg;
	static unsigned char bufs[BATCH][MAXSZ];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	struct timespec to = {0, 50000000};
	uint64_t highest = 0;
	int any = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){0, 50000}, sizeof(struct timeval));
	while (!atomic_load(&stop_rx)) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){bufs[i], MAXSZ};
			m[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
		}
		int n = recvmmsg(fd, m, BATCH, MSG_WAITFORONE, &to);
		int64_t now = now_ns();
		for (int i = 0; i < n; i++) {
			uint64_t seq;
			int64_t sent;
			memcpy(&seq, bufs[i], 8);
			memcpy(&sent, bufs[i] + 8, 8);
			if (seq >= total) continue;
			if (delay[seq] >= 0) { dups++; continue; }
			delay[seq] = now - sent;
			received++;
			if (any && seq < highest) reordered++;
			if (!any || seq > highest) highest = seq;
			any = 1;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *src = NULL, *dst_ns = NULL, *dst = NULL;
	int port = 47100, size = 64, drain_ms = 300, rt = 0;
	double pps = 10000, seconds = 2;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--src-ns")) src = argv[i + 1];
		else if (!strcmp(argv[i], "--dst-ns")) dst_ns = argv[i + 1];
		else if (!strcmp(argv[i], "--dst")) dst = argv[i + 1];
		else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--pps")) pps = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--drain-ms")) drain_ms = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rt-priority")) rt = atoi(argv[i + 1]);
		else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
	}
	if (!src || !dst_ns || !dst || size < 16 || size > MAXSZ || pps <= 0) {
		fprintf(stderr, "usage: udpgen --src-ns PATH --dst-ns PATH --dst IP ...\n");
		return 2;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, dst, &sa.sin_addr) != 1) { fprintf(stderr, "bad --dst\n"); return 2; }
	total = (uint64_t)(pps * seconds);
	delay = malloc(total * sizeof(*delay));
	for (uint64_t i = 0; i < total; i++) delay[i] = -1;

	int rx = socket_in(dst_ns);
	int big = 16 << 20;
	setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	if (bind(rx, (struct sockaddr *)&sa, sizeof(sa)) < 0) { perror("bind"); return 2; }
	int tx = socket_in(src);
	setsockopt(tx, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	if (connect(tx, (struct sockaddr *)&sa, sizeof(sa)) < 0) { perror("connect"); return 2; }

	if (rt > 0) { /* the measuring side must not wait for the scheduler either */
		struct sched_param sp = {.sched_priority = rt};
		if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) perror("sched_setscheduler");
	}
	pthread_t th;
	pthread_create(&th, NULL, receiver, &rx);

	static unsigned char out[BATCH][MAXSZ];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	uint64_t seq = 0, send_err = 0;
	int64_t start = now_ns(), slice = pps <= 5000 ? (int64_t)(1e9 / pps) : 1000000;
	for (int64_t k = 1; seq < total; k++) {
		uint64_t due = (uint64_t)(pps * (double)(k * slice) / 1e9);
		if (due > total) due = total;
		while (seq < due) {
			int n = 0;
			int64_t stamp = now_ns();
			for (; n < BATCH && seq < due; n++, seq++) {
				memcpy(out[n], &seq, 8);
				memcpy(out[n] + 8, &stamp, 8);
				iov[n] = (struct iovec){out[n], (size_t)size};
				m[n].msg_hdr = (struct msghdr){.msg_iov = &iov[n], .msg_iovlen = 1};
			}
			int sent = sendmmsg(tx, m, (unsigned)n, 0);
			if (sent < n) send_err += (uint64_t)(n - (sent < 0 ? 0 : sent));
		}
		int64_t next = start + (k + 1) * slice;
		struct timespec ts = {next / 1000000000LL, next % 1000000000LL};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	double elapsed = (double)(now_ns() - start) / 1e9;
	usleep((useconds_t)drain_ms * 1000);
	atomic_store(&stop_rx, 1);
	pthread_join(th, NULL);
	qsort(delay, total, sizeof(*delay), cmp64);
	uint64_t lost = total - received;
	int64_t *d = delay + lost; /* the -1 entries sort first */
	double p50 = received ? d[received / 2] / 1e6 : -1;
	double p99 = received ? d[(uint64_t)(received * 0.99)] / 1e6 : -1;
	double max = received ? d[received - 1] / 1e6 : -1, sum = 0, sq = 0;
	for (uint64_t i = 0; i < received; i++) sum += d[i] / 1e6;
	double mean = received ? sum / (double)received : -1;
	for (uint64_t i = 0; i < received; i++) sq += (d[i] / 1e6 - mean) * (d[i] / 1e6 - mean);
	double sd = received > 1 ? sqrt(sq / (double)(received - 1)) : -1;
	printf("{\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"duplicates\":%llu,"
	       "\"reordered\":%llu,\"send_errors\":%llu,\"send_seconds\":%.4f,\"offered_pps\":%.1f,"
	       "\"delay_p50_ms\":%.4f,\"delay_p99_ms\":%.4f,\"delay_max_ms\":%.4f,"
	       "\"delay_mean_ms\":%.4f,\"delay_sd_ms\":%.4f}\n",
	       (unsigned long long)total, (unsigned long long)received,
	       (unsigned long long)(total - received), (unsigned long long)dups,
	       (unsigned long long)reordered, (unsigned long long)send_err, elapsed,
	       (double)total / elapsed, p50, p99, max, mean, sd);
	return 0;
}
