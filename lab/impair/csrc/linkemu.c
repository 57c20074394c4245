/*
 * linkemu: a userspace link emulator for kernels without sch_netem.
 *
 * One process serves many links. A link is a pair of ports (interfaces in the
 * namespace the process runs in); every frame read on one port is held for the
 * configured delay (+ jitter), dropped by loss, shaped by rate and written to
 * the other port. Frames move with AF_PACKET sockets; release times live on
 * one binary heap ordered by CLOCK_MONOTONIC, driven by a timerfd.
 *
 * Control: line commands on a Unix stream socket, one JSON line answered per
 * command:
 *   hello
 *   add LINK IFA IFB [mtu=N]
 *   set LINK a_to_b|b_to_a|both key=value ...   (all keys; missing ones reset
 *                                                to their defaults)
 *   comp LINK a_to_b|b_to_a|both MICROSECONDS   (compensation: taken off every
 *                                                frame's hold, never below zero; kept
 *                                                across "set")
 *   del LINK
 *   stats [LINK]     (per direction: forwarded, dropped by cause, late_500us,
 *                     late_2ms, late_10ms: frames sent that much later than due)
 *   quit
 * Keys of set: delay_us jitter_us dist=normal|uniform|pareto loss=<fraction>
 *   ge_p ge_r ge_bad ge_good (Gilbert-Elliott, fractions; ge_p>0 enables it)
 *   rate_bps queue_us limit blackhole=0|1 reorder=0|1
 *
 * Lifetime: exits on SIGTERM/SIGINT/SIGHUP, on "quit", when the file given by
 * --life-file disappears, or when the pipe given by --life-fd closes. With
 * --daemon it detaches once its control socket listens; --ready-fd receives
 * "ready PID" when it accepts commands. --rt-priority N runs it SCHED_FIFO.
 *
 * Build: gcc -O2 -std=gnu11 -Wall -Wextra -o linkemu linkemu.c -lm
 */
#define _GNU_SOURCE
#define ANYLAB_PROGRAM "linkemu"
#include "anylab.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <math.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define SNAP 65536
#define MAX_LINE 4096
#define MAX_ID 64
#define MAX_CLIENTS 64
#define RX_ROUNDS 4 /* batches per port per wakeup, for fairness */
#define HOUSEKEEP_NS 200000000LL

enum src_kind { SRC_LISTEN, SRC_CLIENT, SRC_TIMER, SRC_HOUSE, SRC_SIGNAL, SRC_LIFE, SRC_PORT };
enum dist { DIST_NORMAL, DIST_UNIFORM, DIST_PARETO };

struct src {
	enum src_kind kind;
	int fd;
	void *obj;
};

struct params {
	int64_t delay_ns, jitter_ns, queue_ns;
	int dist;
	double loss;                       /* random loss, fraction */
	double ge_p, ge_r, ge_bad, ge_good; /* Gilbert-Elliott; on when ge_p > 0 */
	uint64_t rate_bps;                 /* 0: unlimited */
	uint32_t limit;                    /* frames held per direction */
	int blackhole, reorder;
};

struct counters {
	uint64_t fwd, fwd_bytes, drop_loss, drop_bh, drop_queue, drop_err;
	uint64_t drop_overrun; /* dropped by the kernel: the emulator fell behind */
	/* frames sent later than due, by more than 0.5, 2 and 10 ms (self-monitoring:
	 * delays are only as good as the emulator's scheduling) */
	uint64_t late_500us, late_2ms, late_10ms;
};

struct dir {
	struct params p;
	struct counters c;
	uint32_t depth;
	int ge_bad_state;
	int64_t last_release; /* FIFO floor when reorder is off */
	int64_t ser_free;     /* when the rate serializer is next idle */
	/* forwarding cost of the lab around the emulator, measured and taken off the delay
	 * ("comp"); kept across "set" */
	int64_t comp_ns;
};

struct link;

struct port {
	struct src src;
	struct link *link;
	int side;
	int ifindex;
	char name[IF_NAMESIZE];
};

/* dir[0] is a_to_b: read on port[0], written to port[1]. */
struct link {
	char id[MAX_ID + 1];
	int mtu;
	struct port port[2];
	struct dir dir[2];
};

struct pkt {
	int64_t t;
	uint64_t seq;
	struct link *link;
	uint8_t dir;
	uint32_t len;
	unsigned char data[];
};

struct client {
	struct src src;
	size_t used;
	char buf[MAX_LINE];
};

static struct {
	int epfd, timerfd;
	int64_t armed;
	struct pkt **heap;
	size_t heap_len, heap_cap;
	uint64_t seq;
	struct link **links;
	size_t nlinks, links_cap;
	struct link *dead[MAX_CLIENTS]; /* deleted this round, freed after dispatch */
	size_t ndead;
	struct client *clients[MAX_CLIENTS];
	const char *life_file;
	const char *control_path;
	int quit;
	uint64_t rng[4];
} g;

/* ---------- time, random ---------- */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
static uint64_t rnd64(void)
{
	uint64_t *s = g.rng, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
	s[2] ^= t; s[3] = rotl(s[3], 45);
	return r;
}

static double rnd_unit(void) { return (double)(rnd64() >> 11) * 0x1.0p-53; }

/* Pareto as iproute2's pareto table: shape 3, (x - 1.5) * 4/3, upper tail
 * clipped at 4; shifted and scaled here to mean 0, sd 1 (exact moments). */
#define PARETO_MEAN (-8.0 / 243.0)
#define PARETO_VAR ((16.0 / 9.0) * (23.0 / 9.0 - (1.5 - 2.0 / 81.0) * (1.5 - 2.0 / 81.0)))

/* A sample with mean 0 and standard deviation 1 from the chosen distribution,
 * bounded like netem's 16-bit tables (normal within +-4). */
static double rnd_std(int dist)
{
	double u, z;
	switch (dist) {
	case DIST_UNIFORM:
		return (2.0 * rnd_unit() - 1.0) * sqrt(3.0);
	case DIST_PARETO:
		z = (pow(1.0 - rnd_unit(), -1.0 / 3.0) - 1.5) * (4.0 / 3.0);
		return ((z > 4.0 ? 4.0 : z) - PARETO_MEAN) / sqrt(PARETO_VAR);
	default:
		do { u = rnd_unit(); } while (u <= 0.0);
		z = sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * rnd_unit());
		return z > 4.0 ? 4.0 : (z < -4.0 ? -4.0 : z);
	}
}

/* ---------- heap of held frames ---------- */

static int pkt_before(const struct pkt *a, const struct pkt *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void sift_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < g.heap_len && pkt_before(g.heap[l], g.heap[m])) m = l;
		if (r < g.heap_len && pkt_before(g.heap[r], g.heap[m])) m = r;
		if (m == i) return;
		struct pkt *tmp = g.heap[i]; g.heap[i] = g.heap[m]; g.heap[m] = tmp;
		i = m;
	}
}

static int heap_push(struct pkt *p)
{
	if (g.heap_len == g.heap_cap) {
		size_t cap = g.heap_cap ? g.heap_cap * 2 : 4096;
		struct pkt **h = realloc(g.heap, cap * sizeof(*h));
		if (!h) return -1;
		g.heap = h; g.heap_cap = cap;
	}
	size_t i = g.heap_len++;
	g.heap[i] = p;
	while (i > 0 && pkt_before(g.heap[i], g.heap[(i - 1) / 2])) {
		size_t up = (i - 1) / 2;
		struct pkt *tmp = g.heap[i]; g.heap[i] = g.heap[up]; g.heap[up] = tmp;
		i = up;
	}
	return 0;
}

static struct pkt *heap_pop(void)
{
	struct pkt *top = g.heap[0];
	g.heap[0] = g.heap[--g.heap_len];
	sift_down(0);
	return top;
}

/* Drop every held frame of a link that is going away, then re-heapify. */
static void heap_purge(const struct link *l)
{
	size_t w = 0;
	for (size_t i = 0; i < g.heap_len; i++) {
		if (g.heap[i]->link == l) free(g.heap[i]);
		else g.heap[w++] = g.heap[i];
	}
	g.heap_len = w;
	for (size_t i = g.heap_len / 2; i-- > 0;) sift_down(i);
}

/* ---------- data path ---------- */

static int lose(struct dir *d)
{
	const struct params *p = &d->p;
	if (p->ge_p > 0.0) { /* same state machine as netem's gemodel */
		if (!d->ge_bad_state) {
			if (rnd_unit() < p->ge_p) d->ge_bad_state = 1;
			return rnd_unit() < p->ge_good;
		}
		if (rnd_unit() < p->ge_r) d->ge_bad_state = 0;
		return rnd_unit() < p->ge_bad;
	}
	return p->loss > 0.0 && rnd_unit() < p->loss;
}

static void admit(struct link *l, int di, const unsigned char *data, uint32_t len,
		  const struct tpacket_auxdata *aux, int64_t now)
{
	struct dir *d = &l->dir[di];
	const struct params *p = &d->p;
	uint32_t vlan = aux && (aux->tp_status & TP_STATUS_VLAN_VALID) && len >= 12 ? 4 : 0;

	if (p->blackhole) { d->c.drop_bh++; return; }
	if (lose(d)) { d->c.drop_loss++; return; }
	if (d->depth >= p->limit) { d->c.drop_queue++; return; }

	int64_t t = now;
	if (p->rate_bps) {
		int64_t start = d->ser_free > now ? d->ser_free : now;
		if (start - now > p->queue_ns) { d->c.drop_queue++; return; }
		d->ser_free = start + (int64_t)((len + vlan) * 8.0 * 1e9 / (double)p->rate_bps);
		t = d->ser_free;
	}
	double hold = (double)p->delay_ns - (double)d->comp_ns;
	if (p->jitter_ns > 0) hold += (double)p->jitter_ns * rnd_std(p->dist);
	t += hold > 0.0 ? (int64_t)hold : 0;
	if (!p->reorder) {
		if (t < d->last_release) t = d->last_release;
		d->last_release = t;
	}

	struct pkt *pk = malloc(sizeof(*pk) + len + vlan);
	if (!pk) { d->c.drop_err++; return; }
	pk->t = t; pk->seq = g.seq++; pk->link = l; pk->dir = (uint8_t)di; pk->len = len + vlan;
	if (vlan) { /* the kernel moved the tag to metadata: put it back */
		uint16_t tpid = htons((aux->tp_status & TP_STATUS_VLAN_TPID_VALID) ?
				      aux->tp_vlan_tpid : ETH_P_8021Q);
		uint16_t tci = htons(aux->tp_vlan_tci);
		memcpy(pk->data, data, 12);
		memcpy(pk->data + 12, &tpid, 2);
		memcpy(pk->data + 14, &tci, 2);
		memcpy(pk->data + 16, data + 12, len - 12);
	} else {
		memcpy(pk->data, data, len);
	}
	if (heap_push(pk) < 0) { free(pk); d->c.drop_err++; return; }
	d->depth++;
}

static void count_lateness(struct counters *c, int64_t late_ns)
{
	if (late_ns > 500000) c->late_500us++;
	if (late_ns > 2000000) c->late_2ms++;
	if (late_ns > 10000000) c->late_10ms++;
}

static void transmit(struct pkt *pk, int64_t now)
{
	struct link *l = pk->link;
	struct dir *d = &l->dir[pk->dir];
	struct port *out = &l->port[1 - pk->dir];
	struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = out->ifindex};
	if (pk->len >= 14) memcpy(&to.sll_protocol, pk->data + 12, 2);
	d->depth--;
	if (sendto(out->src.fd, pk->data, pk->len, MSG_DONTWAIT, (struct sockaddr *)&to,
		   sizeof(to)) < 0) {
		d->c.drop_err++;
	} else {
		d->c.fwd++;
		d->c.fwd_bytes += pk->len;
		count_lateness(&d->c, now - pk->t);
	}
	free(pk);
}

static void release_due(void)
{
	int64_t now = now_ns();
	while (g.heap_len && g.heap[0]->t <= now) transmit(heap_pop(), now);
}

static void arm_timer(void)
{
	int64_t t = g.heap_len ? g.heap[0]->t : 0;
	if (t == g.armed) return;
	struct itimerspec its = {0};
	its.it_value.tv_sec = t / 1000000000LL;
	its.it_value.tv_nsec = t % 1000000000LL;
	if (t == 0) its.it_value.tv_nsec = 0; /* disarm */
	timerfd_settime(g.timerfd, TFD_TIMER_ABSTIME, &its, NULL);
	g.armed = t;
}

static void port_readable(struct port *pt)
{
	static unsigned char bufs[BATCH][SNAP];
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	static struct sockaddr_ll from[BATCH];
	static char cbuf[BATCH][CMSG_SPACE(sizeof(struct tpacket_auxdata)) +
				CMSG_SPACE(sizeof(struct timespec))];

	for (int round = 0; round < RX_ROUNDS; round++) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){bufs[i], SNAP};
			msgs[i].msg_hdr = (struct msghdr){
				.msg_name = &from[i], .msg_namelen = sizeof(from[i]),
				.msg_iov = &iov[i], .msg_iovlen = 1,
				.msg_control = cbuf[i], .msg_controllen = sizeof(cbuf[i])};
		}
		int n = recvmmsg(pt->src.fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) return;
		int64_t now = now_ns();
		/* receive timestamps are CLOCK_REALTIME: moved to the monotonic clock */
		int64_t real_minus_mono = clock_ns(CLOCK_REALTIME) - now;
		for (int i = 0; i < n; i++) {
			struct msghdr *h = &msgs[i].msg_hdr;
			if (from[i].sll_pkttype == PACKET_OUTGOING) continue;
			if (h->msg_flags & MSG_TRUNC) { pt->link->dir[pt->side].c.drop_err++; continue; }
			const struct tpacket_auxdata *aux = NULL;
			int64_t arrival = now;
			for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
				if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA)
					aux = (const struct tpacket_auxdata *)CMSG_DATA(c);
				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
					struct timespec ts;
					memcpy(&ts, CMSG_DATA(c), sizeof(ts));
					int64_t t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec -
						    real_minus_mono;
					/* a stamp from the future or older than a second is a
					 * clock step, not an arrival */
					if (t <= now && now - t < 1000000000LL) arrival = t;
				}
			}
			admit(pt->link, pt->side, bufs[i], msgs[i].msg_len, aux, arrival);
		}
		if (n < BATCH) return;
	}
}

/* ---------- links ---------- */

static void params_default(struct params *p)
{
	memset(p, 0, sizeof(*p));
	p->dist = DIST_NORMAL;
	p->queue_ns = 50000000LL;
	p->limit = 10000;
}

static struct link *link_find(const char *id)
{
	for (size_t i = 0; i < g.nlinks; i++)
		if (strcmp(g.links[i]->id, id) == 0) return g.links[i];
	return NULL;
}

static int port_open(struct port *pt, const char *ifname, char *err, size_t errlen)
{
	int one = 1, bufsz = 4 << 20;
	snprintf(pt->name, sizeof(pt->name), "%s", ifname);
	pt->ifindex = (int)if_nametoindex(ifname);
	if (!pt->ifindex) { snprintf(err, errlen, "no interface %s", ifname); return -1; }
	/* protocol 0 until bound, so no frames from other interfaces slip in */
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) { snprintf(err, errlen, "socket: %s", strerror(errno)); return -1; }
	setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
	setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
	/* the kernel's receive time: a frame's delay counts from its arrival, not from when
	 * this process got to read it */
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				  .sll_ifindex = pt->ifindex};
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		snprintf(err, errlen, "bind %s: %s", ifname, strerror(errno));
		close(fd);
		return -1;
	}
	pt->src = (struct src){SRC_PORT, fd, pt};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &pt->src};
	epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

/* The kernel's drop count resets on every read: fold it into the counters. */
static void collect_overruns(void)
{
	for (size_t i = 0; i < g.nlinks; i++) {
		for (int s = 0; s < 2; s++) {
			struct port *pt = &g.links[i]->port[s];
			struct tpacket_stats st;
			socklen_t len = sizeof(st);
			if (getsockopt(pt->src.fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
				g.links[i]->dir[s].c.drop_overrun += st.tp_drops;
		}
	}
}

static void port_close(struct port *pt)
{
	if (pt->src.fd < 0) return;
	epoll_ctl(g.epfd, EPOLL_CTL_DEL, pt->src.fd, NULL);
	close(pt->src.fd);
	pt->src.fd = -1;
}

static int link_add(const char *id, const char *ifa, const char *ifb, int mtu, char *err,
		    size_t errlen)
{
	if (link_find(id)) { snprintf(err, errlen, "link %s exists", id); return -1; }
	if (g.nlinks == g.links_cap) {
		size_t cap = g.links_cap ? g.links_cap * 2 : 16;
		struct link **ls = realloc(g.links, cap * sizeof(*ls));
		if (!ls) { snprintf(err, errlen, "out of memory"); return -1; }
		g.links = ls; g.links_cap = cap;
	}
	struct link *l = calloc(1, sizeof(*l));
	if (!l) { snprintf(err, errlen, "out of memory"); return -1; }
	snprintf(l->id, sizeof(l->id), "%s", id);
	l->mtu = mtu;
	for (int s = 0; s < 2; s++) {
		l->port[s].link = l;
		l->port[s].side = s;
		l->port[s].src.fd = -1;
		params_default(&l->dir[s].p);
	}
	if (port_open(&l->port[0], ifa, err, errlen) < 0 ||
	    port_open(&l->port[1], ifb, err, errlen) < 0) {
		port_close(&l->port[0]);
		port_close(&l->port[1]);
		free(l);
		return -1;
	}
	g.links[g.nlinks++] = l;
	return 0;
}

static void link_free(struct link *l)
{
	heap_purge(l);
	port_close(&l->port[0]);
	port_close(&l->port[1]);
	free(l);
}

/* Events for the link's ports may still be pending in this epoll batch, so
 * the memory is freed only after the batch (see reap_dead). */
static void link_del(struct link *l)
{
	for (size_t i = 0; i < g.nlinks; i++) {
		if (g.links[i] != l) continue;
		g.links[i] = g.links[--g.nlinks];
		break;
	}
	heap_purge(l);
	port_close(&l->port[0]);
	port_close(&l->port[1]);
	if (g.ndead < MAX_CLIENTS) g.dead[g.ndead++] = l; /* else leak rather than risk a dangling pointer */
}

static void reap_dead(void)
{
	while (g.ndead) free(g.dead[--g.ndead]);
}

/* ---------- control protocol ---------- */

static int reply(struct client *c, const char *fmt, ...)
{
	static char out[1 << 20];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, sizeof(out) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(out) - 1) n = snprintf(out, sizeof(out), "{\"ok\":false,\"error\":\"reply too long\"}");
	out[n++] = '\n';
	return send(c->src.fd, out, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

static int parse_num(const char *v, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || *end || !(x >= lo && x <= hi)) return -1;
	*out = x;
	return 0;
}

/* Parses "key=value" tokens into a fresh parameter set. */
static int parse_params(char **tok, int ntok, struct params *p, char *err, size_t errlen)
{
	params_default(p);
	for (int i = 0; i < ntok; i++) {
		char *eq = strchr(tok[i], '=');
		if (!eq) { snprintf(err, errlen, "expected key=value: %s", tok[i]); return -1; }
		*eq = '\0';
		const char *k = tok[i], *v = eq + 1;
		double x = 0;
		if (strcmp(k, "dist") == 0) {
			if (strcmp(v, "normal") == 0) p->dist = DIST_NORMAL;
			else if (strcmp(v, "uniform") == 0) p->dist = DIST_UNIFORM;
			else if (strcmp(v, "pareto") == 0) p->dist = DIST_PARETO;
			else { snprintf(err, errlen, "unknown dist %s", v); return -1; }
			continue;
		}
		int bad = 1;
		if (strcmp(k, "delay_us") == 0 && !(bad = parse_num(v, 0, 3.6e9, &x))) p->delay_ns = (int64_t)(x * 1000);
		else if (strcmp(k, "jitter_us") == 0 && !(bad = parse_num(v, 0, 3.6e9, &x))) p->jitter_ns = (int64_t)(x * 1000);
		else if (strcmp(k, "queue_us") == 0 && !(bad = parse_num(v, 0, 3.6e9, &x))) p->queue_ns = (int64_t)(x * 1000);
		else if (strcmp(k, "loss") == 0 && !(bad = parse_num(v, 0, 1, &x))) p->loss = x;
		else if (strcmp(k, "ge_p") == 0 && !(bad = parse_num(v, 0, 1, &x))) p->ge_p = x;
		else if (strcmp(k, "ge_r") == 0 && !(bad = parse_num(v, 0, 1, &x))) p->ge_r = x;
		else if (strcmp(k, "ge_bad") == 0 && !(bad = parse_num(v, 0, 1, &x))) p->ge_bad = x;
		else if (strcmp(k, "ge_good") == 0 && !(bad = parse_num(v, 0, 1, &x))) p->ge_good = x;
		else if (strcmp(k, "rate_bps") == 0 && !(bad = parse_num(v, 0, 1e12, &x))) p->rate_bps = (uint64_t)x;
		else if (strcmp(k, "limit") == 0 && !(bad = parse_num(v, 1, 1e7, &x))) p->limit = (uint32_t)x;
		else if (strcmp(k, "blackhole") == 0 && !(bad = parse_num(v, 0, 1, &x))) p->blackhole = x != 0;
		else if (strcmp(k, "reorder") == 0 && !(bad = parse_num(v, 0, 1, &x))) p->reorder = x != 0;
		if (bad) { snprintf(err, errlen, "bad or unknown setting %s=%s", k, v); return -1; }
	}
	return 0;
}

static void apply_params(struct dir *d, const struct params *p)
{
	d->p = *p;
	if (p->ge_p <= 0.0) d->ge_bad_state = 0;
}

static size_t dir_json(char *o, size_t n, const struct dir *d)
{
	static const char *dists[] = {"normal", "uniform", "pareto"};
	const struct params *p = &d->p;
	const struct counters *c = &d->c;
	int w = snprintf(o, n,
		"{\"forwarded\":%llu,\"forwarded_bytes\":%llu,\"dropped_loss\":%llu,"
		"\"dropped_blackhole\":%llu,\"dropped_queue\":%llu,\"dropped_error\":%llu,"
		"\"dropped_overrun\":%llu,\"late_500us\":%llu,\"late_2ms\":%llu,"
		"\"late_10ms\":%llu,\"in_queue\":%u,\"comp_us\":%.3f,\"params\":{\"delay_us\":%.3f,\"jitter_us\":%.3f,\"dist\":\"%s\","
		"\"loss\":%.9g,\"ge_p\":%.9g,\"ge_r\":%.9g,\"ge_bad\":%.9g,\"ge_good\":%.9g,"
		"\"rate_bps\":%llu,\"queue_us\":%.3f,\"limit\":%u,\"blackhole\":%d,\"reorder\":%d}}",
		(unsigned long long)c->fwd, (unsigned long long)c->fwd_bytes,
		(unsigned long long)c->drop_loss, (unsigned long long)c->drop_bh,
		(unsigned long long)c->drop_queue, (unsigned long long)c->drop_err,
		(unsigned long long)c->drop_overrun, (unsigned long long)c->late_500us,
		(unsigned long long)c->late_2ms, (unsigned long long)c->late_10ms, d->depth,
		d->comp_ns / 1e3, p->delay_ns / 1e3, p->jitter_ns / 1e3, dists[p->dist], p->loss, p->ge_p, p->ge_r,
		p->ge_bad, p->ge_good, (unsigned long long)p->rate_bps, p->queue_ns / 1e3,
		p->limit, p->blackhole, p->reorder);
	return w < 0 ? 0 : ((size_t)w < n ? (size_t)w : n - 1);
}

static int cmd_stats(struct client *c, const char *only)
{
	static char o[1 << 20];
	size_t n = sizeof(o), w = 0;
	collect_overruns();
	w += (size_t)snprintf(o + w, n - w, "{\"ok\":true,\"pid\":%d,\"links\":[", (int)getpid());
	int first = 1;
	for (size_t i = 0; i < g.nlinks && w < n - 512; i++) {
		const struct link *l = g.links[i];
		if (only && strcmp(only, l->id) != 0) continue;
		w += (size_t)snprintf(o + w, n - w, "%s{\"id\":\"%s\",\"ports\":[\"%s\",\"%s\"],"
				      "\"mtu\":%d,\"a_to_b\":", first ? "" : ",", l->id,
				      l->port[0].name, l->port[1].name, l->mtu);
		w += dir_json(o + w, n - w, &l->dir[0]);
		w += (size_t)snprintf(o + w, n - w, ",\"b_to_a\":");
		w += dir_json(o + w, n - w, &l->dir[1]);
		w += (size_t)snprintf(o + w, n - w, "}");
		first = 0;
	}
	if (only && first) return reply(c, "{\"ok\":false,\"error\":\"no link %s\"}", only);
	return reply(c, "%s]}", o);
}

static int valid_token(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max) return 0;
	for (; *s; s++)
		if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
		      ('0' <= *s && *s <= '9') || strchr("_.:-@", *s)))
			return 0;
	return 1;
}

static int cmd_set(struct client *c, char **tok, int ntok)
{
	char err[256];
	struct params p;
	if (ntok < 3) return reply(c, "{\"ok\":false,\"error\":\"usage: set LINK DIR key=value...\"}");
	struct link *l = link_find(tok[1]);
	if (!l) return reply(c, "{\"ok\":false,\"error\":\"no link %s\"}", tok[1]);
	int both = strcmp(tok[2], "both") == 0, ab = strcmp(tok[2], "a_to_b") == 0;
	if (!both && !ab && strcmp(tok[2], "b_to_a") != 0)
		return reply(c, "{\"ok\":false,\"error\":\"bad direction\"}");
	if (parse_params(tok + 3, ntok - 3, &p, err, sizeof(err)) < 0)
		return reply(c, "{\"ok\":false,\"error\":\"%s\"}", err);
	if (both || ab) apply_params(&l->dir[0], &p);
	if (both || !ab) apply_params(&l->dir[1], &p);
	return reply(c, "{\"ok\":true}");
}

static int cmd_comp(struct client *c, char **tok, int ntok)
{
	double us = 0;
	if (ntok != 4 || parse_num(tok[3], 0, 1e6, &us))
		return reply(c, "{\"ok\":false,\"error\":\"usage: comp LINK DIR MICROSECONDS\"}");
	struct link *l = link_find(tok[1]);
	if (!l) return reply(c, "{\"ok\":false,\"error\":\"no link %s\"}", tok[1]);
	int both = strcmp(tok[2], "both") == 0, ab = strcmp(tok[2], "a_to_b") == 0;
	if (!both && !ab && strcmp(tok[2], "b_to_a") != 0)
		return reply(c, "{\"ok\":false,\"error\":\"bad direction\"}");
	if (both || ab) l->dir[0].comp_ns = (int64_t)(us * 1e3);
	if (both || !ab) l->dir[1].comp_ns = (int64_t)(us * 1e3);
	return reply(c, "{\"ok\":true}");
}

static int cmd_add(struct client *c, char **tok, int ntok)
{
	char err[256];
	double mtu = 1500;
	if (ntok < 4 || ntok > 5) return reply(c, "{\"ok\":false,\"error\":\"usage: add LINK IFA IFB [mtu=N]\"}");
	if (!valid_token(tok[1], MAX_ID) || !valid_token(tok[2], IF_NAMESIZE - 1) ||
	    !valid_token(tok[3], IF_NAMESIZE - 1))
		return reply(c, "{\"ok\":false,\"error\":\"bad link id or interface name\"}");
	if (ntok == 5 && (strncmp(tok[4], "mtu=", 4) || parse_num(tok[4] + 4, 68, 65535, &mtu)))
		return reply(c, "{\"ok\":false,\"error\":\"bad mtu\"}");
	if (link_add(tok[1], tok[2], tok[3], (int)mtu, err, sizeof(err)) < 0)
		return reply(c, "{\"ok\":false,\"error\":\"%s\"}", err);
	return reply(c, "{\"ok\":true}");
}

static int handle_line(struct client *c, char *line)
{
	char *tok[64], *save = NULL;
	int ntok = 0;
	for (const char *q = line; *q; q++) /* replies echo tokens inside JSON strings */
		if ((unsigned char)*q < 0x20 && *q != '\t' && *q != '\r')
			return reply(c, "{\"ok\":false,\"error\":\"control character in command\"}");
		else if (*q == '"' || *q == '\\' || (unsigned char)*q > 0x7e)
			return reply(c, "{\"ok\":false,\"error\":\"unsupported character in command\"}");
	for (char *t = strtok_r(line, " \t\r", &save); t && ntok < 64; t = strtok_r(NULL, " \t\r", &save))
		tok[ntok++] = t;
	if (ntok == 0) return 0;
	if (strcmp(tok[0], "hello") == 0)
		return reply(c, "{\"ok\":true,\"pid\":%d,\"version\":1,\"links\":%zu}", (int)getpid(), g.nlinks);
	if (strcmp(tok[0], "add") == 0) return cmd_add(c, tok, ntok);
	if (strcmp(tok[0], "set") == 0) return cmd_set(c, tok, ntok);
	if (strcmp(tok[0], "comp") == 0) return cmd_comp(c, tok, ntok);
	if (strcmp(tok[0], "stats") == 0) return cmd_stats(c, ntok > 1 ? tok[1] : NULL);
	if (strcmp(tok[0], "del") == 0) {
		struct link *l = ntok == 2 ? link_find(tok[1]) : NULL;
		if (!l) return reply(c, "{\"ok\":false,\"error\":\"no link %s\"}", ntok == 2 ? tok[1] : "");
		link_del(l);
		return reply(c, "{\"ok\":true}");
	}
	if (strcmp(tok[0], "quit") == 0) { g.quit = 1; return reply(c, "{\"ok\":true}"); }
	return reply(c, "{\"ok\":false,\"error\":\"unknown command %s\"}", tok[0]);
}

static void client_close(struct client *c)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (g.clients[i] == c) g.clients[i] = NULL;
	epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->src.fd, NULL);
	close(c->src.fd);
	free(c);
}

/* All complete lines of one read run before any frame moves, so a batch of
 * commands sent in one write (add + set + set) applies atomically. */
static void client_readable(struct client *c)
{
	ssize_t n = recv(c->src.fd, c->buf + c->used, sizeof(c->buf) - c->used, MSG_DONTWAIT);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
		client_close(c);
		return;
	}
	c->used += (size_t)n;
	char *start = c->buf, *nl;
	while ((nl = memchr(start, '\n', c->used - (size_t)(start - c->buf)))) {
		*nl = '\0';
		if (handle_line(c, start) < 0) { client_close(c); return; }
		start = nl + 1;
	}
	c->used -= (size_t)(start - c->buf);
	memmove(c->buf, start, c->used);
	if (c->used == sizeof(c->buf)) client_close(c); /* line too long */
}

static void accept_client(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) return;
	int slot = -1;
	for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
		if (!g.clients[i]) slot = i;
	struct client *c = slot < 0 ? NULL : calloc(1, sizeof(*c));
	if (!c) { close(fd); return; }
	int sz = 1 << 21;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	c->src = (struct src){SRC_CLIENT, fd, c};
	g.clients[slot] = c;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->src};
	epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* ---------- setup ---------- */

static void watch(struct src *s, int fd, enum src_kind kind)
{
	*s = (struct src){kind, fd, NULL};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

/* Paths longer than sun_path are reached through the directory's fd. */
static int control_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[PATH_MAX + 64];
	const char *slash = strrchr(path, '/');
	if (strlen(path) >= sizeof(sa.sun_path) && slash) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		int dfd = open(dir, O_PATH | O_DIRECTORY);
		if (dfd < 0) die("open %s: %s", dir, strerror(errno));
		snprintf(buf, sizeof(buf), "/proc/self/fd/%d%s", dfd, slash);
		path = buf; /* dfd stays open for the process lifetime */
	}
	if (strlen(path) >= sizeof(sa.sun_path)) die("control path too long");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) die("socket: %s", strerror(errno));
	unlink(path);
	mode_t old = umask(077);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("bind %s: %s", path, strerror(errno));
	umask(old);
	if (listen(fd, 16) < 0) die("listen: %s", strerror(errno));
	return fd;
}

/* The emulator's own ports must stay silent (no IPv6 DAD, RS or MLD). */
static void quiet_namespace(void)
{
	const char *files[] = {"/proc/sys/net/ipv6/conf/default/disable_ipv6",
			       "/proc/sys/net/ipv6/conf/all/disable_ipv6"};
	for (size_t i = 0; i < 2; i++) {
		int fd = open(files[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0) continue;
		if (write(fd, "1\n", 2) < 0) { /* best effort: IPv6 may be absent */ }
		close(fd);
	}
}

static void usage(void)
{
	die("usage: linkemu --control PATH [--netns PATH] [--life-file PATH] [--life-fd N] "
	    "[--ready-fd N] [--rt-priority N] [--daemon]");
}

static void housekeeping(int fd)
{
	uint64_t ticks;
	struct stat st;
	if (read(fd, &ticks, sizeof(ticks)) < 0) { /* nothing to drain */ }
	collect_overruns();
	if (g.life_file && stat(g.life_file, &st) < 0 && errno == ENOENT) g.quit = 1;
}

static void dispatch(struct src *s)
{
	uint64_t ticks;
	char tmp[256];
	switch (s->kind) {
	case SRC_PORT: if (s->fd >= 0) port_readable(s->obj); break;
	case SRC_TIMER: if (read(s->fd, &ticks, sizeof(ticks)) < 0) { /* spurious */ } g.armed = 0; break;
	case SRC_CLIENT: client_readable(s->obj); break;
	case SRC_LISTEN: accept_client(s->fd); break;
	case SRC_HOUSE: housekeeping(s->fd); break;
	case SRC_SIGNAL: g.quit = 1; break;
	case SRC_LIFE: if (read(s->fd, tmp, sizeof(tmp)) <= 0) g.quit = 1; break;
	}
}

struct options {
	const char *netns;
	int life_fd, ready_fd, daemonize, rt_priority;
};

static struct options parse_args(int argc, char **argv)
{
	struct options o = {NULL, -1, -1, 0, 0};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--daemon") == 0) { o.daemonize = 1; continue; }
		if (i + 1 >= argc) usage();
		if (strcmp(argv[i], "--control") == 0) g.control_path = argv[++i];
		else if (strcmp(argv[i], "--netns") == 0) o.netns = argv[++i];
		else if (strcmp(argv[i], "--life-file") == 0) g.life_file = argv[++i];
		else if (strcmp(argv[i], "--life-fd") == 0) o.life_fd = atoi(argv[++i]);
		else if (strcmp(argv[i], "--ready-fd") == 0) o.ready_fd = atoi(argv[++i]);
		else if (strcmp(argv[i], "--rt-priority") == 0) o.rt_priority = atoi(argv[++i]);
		else usage();
	}
	if (!g.control_path) usage();
	return o;
}

/* Scheduling, namespace and control socket; detaches with --daemon. */
static int setup_process(const struct options *o)
{
	if (getrandom(g.rng, sizeof(g.rng), 0) != sizeof(g.rng)) die("getrandom failed");
	precise_timing(o->rt_priority); /* delays stay accurate under CPU load */
	if (o->netns) {
		int nfd = open(o->netns, O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0)
			die("setns %s: %s", o->netns, strerror(errno));
		close(nfd);
	}
	quiet_namespace();
	int lfd = control_socket(g.control_path);
	if (o->daemonize) { /* the starter waits for this parent, then for "ready" */
		pid_t child = fork();
		if (child < 0) die("fork: %s", strerror(errno));
		if (child > 0) _exit(0);
		setsid();
		if (chdir("/") < 0) die("chdir: %s", strerror(errno));
	}
	return lfd;
}

int main(int argc, char **argv)
{
	struct options o = parse_args(argc, argv);
	int lfd = setup_process(&o);

	static struct src s_listen, s_timer, s_house, s_signal, s_life;
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	g.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	int hfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec hk = {{0, HOUSEKEEP_NS}, {0, HOUSEKEEP_NS}};
	timerfd_settime(hfd, 0, &hk, NULL);
	watch(&s_listen, lfd, SRC_LISTEN);
	watch(&s_timer, g.timerfd, SRC_TIMER);
	watch(&s_house, hfd, SRC_HOUSE);
	watch(&s_signal, signal_fd(), SRC_SIGNAL);
	if (o.life_fd >= 0) watch(&s_life, o.life_fd, SRC_LIFE);
	if (o.ready_fd >= 0) {
		dprintf(o.ready_fd, "ready %d\n", (int)getpid());
		close(o.ready_fd);
	}

	struct epoll_event evs[64];
	while (!g.quit) {
		int n = epoll_wait(g.epfd, evs, 64, -1);
		if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n && !g.quit; i++) dispatch(evs[i].data.ptr);
		reap_dead();
		release_due();
		arm_timer();
	}
	for (size_t i = 0; i < g.nlinks; i++) link_free(g.links[i]);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (g.clients[i]) client_close(g.clients[i]);
	unlink(g.control_path);
	return 0;
}
