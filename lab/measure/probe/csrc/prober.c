/*
 * prober: paced UDP probes from one client namespace to anycast services.
 *
 *   prober --interval-us N --out FILE --target SERVICE=IP:PORT [--target ...]
 *   (an IPv6 target: SERVICE=[IP]:PORT; a service may have one target per family)
 *          [--dns SERVICE=NAME,QTYPE,IDENTITY ...]
 *          [--flows N] [--rotate] [--duration-ms D] [--drain-ms D] [--late-ms L]
 *          [--rt-priority P]
 *
 * Runs in the namespace it is started in. Every target gets N flows; flow k is
 * its own UDP socket (own source port, so its own ECMP hash), of the target's
 * address family: IPv4 and IPv6 probes go out on the same ticks. Every interval
 * ("tick"), one probe goes out on every flow, the first stamped with the tick's
 * time. With --rotate it goes out on one flow per target instead, in turn: tick
 * SEQ probes flow SEQ % N of every target, so N flows cost the packets of one
 * and each flow is probed every N ticks; an answer naming a flow and a seq it
 * did not send is foreign (BAD). A probe is 24 bytes, network order: u64 seq,
 * u64 send time (CLOCK_MONOTONIC ns), u32 run nonce, u16 target index, u16
 * flow index. The anycast server answers with the request,
 * "\n" and its identity (JSON); the identity text is interned to a small id.
 *
 * DNS targets (--dns: every target of SERVICE; QTYPE 1-65535; NAME printable
 * ASCII without blanks, ',' or '\', labels of 1-63, at most 253 characters,
 * one final dot allowed) are asked a real query instead, one per probe: ID =
 * seq & 0xffff, RD clear, the question built once. IDENTITY names how the
 * answering instance is identified:
 *   nsid   NAME QTYPE IN, EDNS0 OPT (UDP 1232) with an empty NSID option (RFC
 *          5001); the identity is the NSID payload of the answer's OPT;
 *   chaos  NAME TXT CH, QTYPE ignored (RFC 4892: hostname.bind, id.server);
 *          the identity is the first string of the first answer, a TXT;
 *   none   NAME QTYPE IN; no identity.
 * An identity of printable ASCII is kept as it is, any other as "0x" and its
 * bytes in hex. The probe carries neither send time nor seq: the flow keeps
 * the send time per slot, and seq is the newest one sent with the reply's ID,
 * so the reply window (LATE_NS / INTERVAL + 2 probes) must be shorter than
 * 65536 (refused otherwise). A datagram is an answer when it has QR set,
 * opcode 0 and one question, ours (the name's case aside), and its ID names a
 * probe of the window; otherwise it is foreign (BAD), late or a duplicate, as
 * for echoes. Its RCODE includes the OPT's extended bits. NOERROR with at
 * least one answer is a reply (R); anything else is a failed answer (N):
 * another RCODE, no answer, or, RCODE -1, a record that overruns the message
 * (counts, RDATA, OPT options, names: at most 16 compression pointers
 * followed, 255 bytes). A failed answer is the probe's first answer all the
 * same: later ones are duplicates.
 *
 * Replies are read without blocking at every tick (before its sends), every
 * 100 ms and at exit, not on a wake-up per datagram: receive times are the
 * kernel's stamps, so reading later costs no accuracy and saves a wake-up per
 * reply (measured on the 2-core VM: the same CPU at 1 kHz, 15-40 % less at
 * 5 kHz, where wake-ups per reply also preempt the servers).
 *
 * Timing: one periodic timerfd with an absolute first expiry, so the rate does
 * not drift. After a stall the missed slots are skipped, never sent in a
 * burst: seq counts ticks actually sent (0, 1, 2, ... without gaps), and every
 * skip is recorded ("K" line), so a slot that was never sent is not a lost
 * probe. Receive times come from SO_TIMESTAMPNS (realtime, converted to
 * monotonic with a fresh offset per batch) or, without a stamp, the clock.
 *
 * Output (text lines, buffered, written every 100 ms and at exit):
 *   P 1 NONCE INTERVAL_NS FLOWS LATE_NS START_NS     header, format 1
 *   P 2 NONCE INTERVAL_NS FLOWS LATE_NS START_NS ROTATE  ... format 2, with --rotate
 *   T TARGET SERVICE IP PORT                          one per target
 *   D TARGET QTYPE IDENTITY NAME                      a DNS target's query
 *   F TARGET FLOW LOCAL_PORT                          one per flow socket
 *   S SEQ T_NS                                        tick SEQ began at T_NS
 *   E TARGET FLOW SEQ ERRNO                           that send failed
 *   K T_NS SLOTS                                      SLOTS slots were skipped
 *   I ID IDENTITY                                     identity text got ID
 *   R TARGET FLOW SEQ SEND_OFF_NS RTT_NS ID           a first, timely reply
 *   N TARGET FLOW SEQ SEND_OFF_NS RTT_NS RCODE ID     ... that is a failed answer
 *   X T_NS TICKS SENT ERRORS REPLIES DUPS LATE BAD SKIPPED [FAILED]  stats, at exit
 * send time = T_NS of its tick + SEND_OFF_NS; receive time = send + RTT_NS;
 * ID -1: no identity in the reply. Duplicates, replies later than LATE_NS
 * and foreign datagrams are counted (X) but not written. D, N and FAILED
 * appear only when a target is DNS: a file of echo targets is as before.
 * Format 2 (ROTATE 1) is written only with --rotate; its other records are
 * format 1's, E, R and N naming only probes sent (tick SEQ: flow SEQ % FLOWS).
 *
 * Stops on SIGTERM/SIGINT or after --duration-ms, then waits --drain-ms for
 * the last replies (a second signal ends the wait), writes X and exits 0.
 *
 * Build: gcc -O2 -std=gnu11 -Wall -Wextra -o prober prober.c
 */
#define _GNU_SOURCE
#define ANYLAB_PROGRAM "prober"
#include "anylab.h"
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 24
#define MAX_TARGETS 16
#define MAX_FLOWS 64
#define MAX_NAME 63
#define MAX_IDS 1024
#define ID_SLOTS 2048 /* open addressing, power of two, > MAX_IDS */
#define MAX_IDENT 512
#define BATCH 32
#define RX_SIZE 2048
#define OUT_SIZE (1 << 20)
#define OUT_ROOM (MAX_IDENT + 256) /* longest line; flush before less is left */
#define FLUSH_NS 100000000LL
#define MAX_OFFSET_NS 1000000000LL /* a send this long after its tick is not ours */
#define DNS_HEADER 12
#define DNS_MAX_NAME 253   /* presentation form, without the final dot */
#define DNS_MAX_WIRE 255   /* the same name encoded */
#define DNS_MAX_QUERY (DNS_HEADER + DNS_MAX_WIRE + 4 + 15)
#define DNS_MAX_HOPS 16    /* compression pointers followed per name */
#define DNS_MAX_WINDOW 65536 /* probes told apart by the 16-bit message ID */
#define EDNS_UDP_SIZE 1232
#define EDNS_NSID 3
#define RR_OPT 41
#define RR_TXT 16
#define CLASS_IN 1
#define CLASS_CH 3

enum src_kind { SRC_TICK, SRC_FLUSH, SRC_SIGNAL };

struct src {
	enum src_kind kind;
	int fd;
};

enum identity { IDENT_NSID, IDENT_CHAOS, IDENT_NONE };
static const char *const identity_names[] = {"nsid", "chaos", "none"};

/* A DNS target's query, encoded once; each probe sets its ID. */
struct dns_query {
	char service[MAX_NAME + 1];
	char name[DNS_MAX_NAME + 2];
	int qtype;
	enum identity identity;
	unsigned char msg[DNS_MAX_QUERY];
	size_t len, question_len; /* the question: msg[DNS_HEADER .. DNS_HEADER + question_len) */
};

struct target {
	char name[MAX_NAME + 1];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct dns_query *dns; /* NULL: echo probes */
};

struct flow {
	int fd;
	uint16_t target, index, port;
	uint64_t *seen;	  /* bit per seq % window: answered already */
	int64_t *sent_ns; /* DNS flows, per seq % window: when it was sent (not in the probe) */
};

struct ident {
	uint32_t hash;
	int id;
	size_t len;
	char *text;
};

struct counters {
	uint64_t ticks, sent, errors, replies, dups, late, bad, skipped, failed;
};

static struct {
	int64_t interval_ns, late_ns, duration_ns, drain_ns, start_ns;
	int rt_priority, flows_per_target, ntargets, nflows, rotate;
	const char *out_path;
	struct target targets[MAX_TARGETS];
	struct dns_query queries[MAX_TARGETS];
	int nqueries;
	struct flow *flows;
	uint64_t window, next_seq, slots;
	int64_t *tick_ns; /* per seq % window: when that tick began */
	uint32_t nonce;
	int epfd, tickfd, flushfd, sigfd, outfd;
	int stopping, done;
	char *out;
	size_t used;
	int write_failed;
	struct ident ids[ID_SLOTS];
	int nids;
	struct counters c;
} g;

/* ---------- helpers ---------- */

static int64_t parse_int(const char *text, const char *what, int64_t low, int64_t high)
{
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno || end == text || *end || v < low || v > high)
		die("%s must be an integer in [%lld, %lld], not '%s'", what, (long long)low,
		    (long long)high, text);
	return v;
}

/* ---------- output buffer ---------- */

static void flush_out(void)
{
	size_t off = 0;
	while (off < g.used) {
		ssize_t n = write(g.outfd, g.out + off, g.used - off);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			if (!g.write_failed)
				fprintf(stderr, "prober: writing %s failed: %s (records lost)\n",
					g.out_path, strerror(errno));
			g.write_failed = 1;
			break;
		}
		off += (size_t)n;
	}
	g.used = 0;
}

static void room(void)
{
	if (OUT_SIZE - g.used < OUT_ROOM) flush_out();
}

static void put_char(char ch) { g.out[g.used++] = ch; }

static void put_str(const char *s, size_t len)
{
	memcpy(g.out + g.used, s, len);
	g.used += len;
}

static void put_u64(uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n) g.out[g.used++] = tmp[--n];
}

static void put_i64(int64_t v)
{
	if (v < 0) {
		put_char('-');
		put_u64((uint64_t)0 - (uint64_t)v);
	} else {
		put_u64((uint64_t)v);
	}
}

/* A record: a type letter and integer fields, space-separated. */
static void put_record(char kind, const int64_t *fields, int n)
{
	room();
	put_char(kind);
	for (int i = 0; i < n; i++) {
		put_char(' ');
		put_i64(fields[i]);
	}
	put_char('\n');
}

/* ---------- identities ---------- */

static uint32_t fnv1a(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

/* The id of an identity text (new ones are written as "I" lines); -1 when full. */
static int intern(const char *text, size_t len)
{
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		len--;
	if (len == 0) return -1;
	if (len > MAX_IDENT) len = MAX_IDENT;
	uint32_t h = fnv1a(text, len);
	for (uint32_t i = 0; i < ID_SLOTS; i++) {
		struct ident *e = &g.ids[(h + i) & (ID_SLOTS - 1)];
		if (!e->text) {
			if (g.nids >= MAX_IDS) return -1;
			e->text = malloc(len);
			if (!e->text) return -1;
			memcpy(e->text, text, len);
			for (size_t k = 0; k < len; k++) /* keep the line format intact */
				if ((uint8_t)e->text[k] < 0x20) e->text[k] = ' ';
			e->len = len;
			e->hash = h;
			e->id = g.nids++;
			room();
			put_str("I ", 2);
			put_u64((uint64_t)e->id);
			put_char(' ');
			put_str(e->text, len);
			put_char('\n');
			return e->id;
		}
		if (e->hash == h && e->len == len && memcmp(e->text, text, len) == 0) return e->id;
	}
	return -1;
}

/* ---------- probes ---------- */

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return ntohl(v);
}

static uint16_t get_u16(const unsigned char *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return ntohs(v);
}

static void send_tick(void)
{
	uint64_t seq = g.next_seq++;
	uint64_t slot = seq % g.window;
	for (int i = 0; i < g.nflows; i++) g.flows[i].seen[slot / 64] &= ~(1ULL << (slot % 64));
	int64_t tick = now_ns();
	g.tick_ns[slot] = tick;
	int64_t rec[2] = {(int64_t)seq, tick};
	put_record('S', rec, 2);
	g.c.ticks++;
	unsigned char buf[PAYLOAD];
	uint64_t be_seq = htobe64(seq);
	uint32_t be_nonce = htonl(g.nonce);
	uint16_t be_id = htons((uint16_t)seq);
	memcpy(buf, &be_seq, 8);
	memcpy(buf + 16, &be_nonce, 4);
	/* flows are target-major: a stride of flows_per_target visits one flow per target */
	int first = g.rotate ? (int)(seq % (uint64_t)g.flows_per_target) : 0;
	int step = g.rotate ? g.flows_per_target : 1;
	for (int i = first; i < g.nflows; i += step) {
		struct flow *f = &g.flows[i];
		const struct target *to = &g.targets[f->target];
		int64_t sent = i == first ? tick : now_ns();
		const unsigned char *msg = buf;
		size_t len = PAYLOAD;
		if (to->dns) {
			memcpy(to->dns->msg, &be_id, 2);
			f->sent_ns[slot] = sent;
			msg = to->dns->msg;
			len = to->dns->len;
		} else {
			uint64_t be_time = htobe64((uint64_t)sent);
			uint16_t be_t = htons(f->target), be_f = htons(f->index);
			memcpy(buf + 8, &be_time, 8);
			memcpy(buf + 20, &be_t, 2);
			memcpy(buf + 22, &be_f, 2);
		}
		if (sendto(f->fd, msg, len, 0, (const struct sockaddr *)&to->addr,
			   to->addrlen) < 0) {
			int64_t err[4] = {f->target, f->index, (int64_t)seq, errno};
			put_record('E', err, 4);
			g.c.errors++;
		} else {
			g.c.sent++;
		}
	}
}

/* Whether flow F sent probe SEQ (a seq already sent): every flow does, one in turn with
 * --rotate. */
static int sent_on(const struct flow *f, uint64_t seq)
{
	return !g.rotate || seq % (uint64_t)g.flows_per_target == f->index;
}

/* Whether an answer to probe SEQ of flow F (sent at SENT) is its first timely one: then it is
 * marked answered and *offset is its send time's offset in the tick; else it is counted. */
static int first_answer(struct flow *f, uint64_t seq, int64_t sent, int64_t recv,
			int64_t *offset)
{
	if (!sent_on(f, seq)) { /* before the time checks: SENT is not this probe's */
		g.c.bad++;
		return 0;
	}
	if (g.next_seq - seq >= g.window || recv - sent > g.late_ns) {
		g.c.late++;
		return 0;
	}
	uint64_t slot = seq % g.window;
	*offset = sent - g.tick_ns[slot];
	if (*offset < 0 || *offset > MAX_OFFSET_NS) {
		g.c.bad++;
		return 0;
	}
	uint64_t bit = 1ULL << (slot % 64);
	if (f->seen[slot / 64] & bit) {
		g.c.dups++;
		return 0;
	}
	f->seen[slot / 64] |= bit;
	return 1;
}

/* The record of a first answer: R when good, N (a failed answer, with its RCODE) else. */
static void put_answer(const struct flow *f, uint64_t seq, int64_t offset, int64_t sent,
		       int64_t recv, int64_t read_at, int good, int64_t rcode, int id)
{
	/* A kernel stamp converted with an offset taken a moment later is off by any step of
	 * the realtime clock in between; one that lands before the send is wrong, so the read
	 * time (later than the true arrival, never before it) stands in for it. */
	int64_t rtt = (recv > sent ? recv : read_at) - sent;
	int64_t rec[7] = {f->target, f->index, (int64_t)seq, offset, rtt, rcode, id};
	if (good) {
		g.c.replies++;
		rec[5] = id;
		put_record('R', rec, 6);
	} else {
		g.c.failed++;
		put_record('N', rec, 7);
	}
}

static void on_echo(struct flow *f, const unsigned char *data, size_t len, int64_t recv,
		    int64_t read_at)
{
	if (len < PAYLOAD || get_u32(data + 16) != g.nonce) {
		g.c.bad++;
		return;
	}
	uint64_t seq = get_u64(data);
	int64_t sent = (int64_t)get_u64(data + 8), offset;
	if (get_u16(data + 20) != f->target || get_u16(data + 22) != f->index ||
	    seq >= g.next_seq) {
		g.c.bad++;
		return;
	}
	if (!first_answer(f, seq, sent, recv, &offset)) return;
	int id = -1;
	if (len > PAYLOAD && data[PAYLOAD] == '\n')
		id = intern((const char *)data + PAYLOAD + 1, len - PAYLOAD - 1);
	put_answer(f, seq, offset, sent, recv, read_at, 1, 0, id);
}

/* ---------- DNS ---------- */

static size_t set_u16(unsigned char *m, size_t at, unsigned v)
{
	m[at] = (unsigned char)(v >> 8);
	m[at + 1] = (unsigned char)v;
	return at + 2;
}

/* NAME (labels of 1-63 printable ASCII characters, one final dot allowed) in wire form at
 * OUT (DNS_MAX_WIRE bytes); its length. */
static size_t encode_name(const char *name, unsigned char *out)
{
	size_t n = strlen(name), at = 0, label = 0;
	if (n && name[n - 1] == '.') n--;
	if (n == 0 || n > DNS_MAX_NAME)
		die("DNS name '%s' must have 1-%d characters", name, DNS_MAX_NAME);
	for (size_t i = 0; i <= n; i++) {
		if (i == n || name[i] == '.') {
			if (label < 1 || label > 63)
				die("DNS name '%s': labels must have 1-63 characters", name);
			out[at] = (unsigned char)label;
			at += label + 1;
			label = 0;
		} else {
			char c = name[i];
			if (c <= ' ' || c > '~' || c == ',' || c == '\\')
				die("DNS name '%s' must be printable ASCII without "
				    "blanks, ',' or '\\'", name);
			out[at + 1 + label++] = (unsigned char)c;
		}
	}
	out[at] = 0;
	return at + 1;
}

/* Header (ID set per probe; flags 0: a standard query, RD clear), question, and for NSID an
 * OPT RR asking for it. */
static void encode_query(struct dns_query *q)
{
	static const unsigned char opt_nsid[] = { /* root, OPT, size, TTL 0 (DO clear), 4 bytes */
		0, 0, RR_OPT, EDNS_UDP_SIZE >> 8, EDNS_UDP_SIZE & 0xff, 0, 0, 0, 0, 0, 4,
		0, EDNS_NSID, 0, 0};
	unsigned char *m = q->msg;
	int chaos = q->identity == IDENT_CHAOS;
	memset(m, 0, DNS_HEADER);
	set_u16(m, 4, 1);
	size_t at = DNS_HEADER + encode_name(q->name, m + DNS_HEADER);
	at = set_u16(m, at, chaos ? RR_TXT : (unsigned)q->qtype);
	at = set_u16(m, at, chaos ? CLASS_CH : CLASS_IN);
	q->question_len = at - DNS_HEADER;
	if (q->identity == IDENT_NSID) {
		set_u16(m, 10, 1);
		memcpy(m + at, opt_nsid, sizeof(opt_nsid));
		at += sizeof(opt_nsid);
	}
	q->len = at;
}

static unsigned char fold(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Whether the question at P (at least question_len bytes) is ours; the name's case aside
 * (folding leaves length bytes, all < 64, as they are). */
static int same_question(const struct dns_query *q, const unsigned char *p)
{
	const unsigned char *ours = q->msg + DNS_HEADER;
	size_t name = q->question_len - 4;
	for (size_t i = 0; i < name; i++)
		if (fold(ours[i]) != fold(p[i])) return 0;
	return memcmp(ours + name, p + name, 4) == 0;
}

/* The end of the name at OFF (where it ends in place: a compression pointer ends it), once
 * the whole name, pointers followed, proved well formed; 0 if not. */
static size_t skip_name(const unsigned char *m, size_t len, size_t off)
{
	size_t end = 0, wire = 0;
	int hops = 0;
	for (;;) {
		if (off >= len) return 0;
		unsigned char label = m[off];
		if ((label & 0xc0) == 0xc0) {
			if (off + 1 >= len || ++hops > DNS_MAX_HOPS) return 0;
			if (!end) end = off + 2;
			off = (size_t)(label & 0x3f) << 8 | m[off + 1];
			continue;
		}
		if (label & 0xc0) return 0; /* extended label types: none in use */
		wire += label + 1u;
		if (wire > DNS_MAX_WIRE) return 0;
		if (label == 0) return end ? end : off + 1;
		off += label + 1u;
	}
}

struct rr {
	uint16_t type;
	uint32_t ttl;
	const unsigned char *rdata;
	uint16_t rdlen;
};

/* The resource record at *OFF (which moves past it); 0 if it overruns the message. */
static int read_rr(const unsigned char *m, size_t len, size_t *off, struct rr *rr)
{
	size_t at = skip_name(m, len, *off);
	if (!at || len - at < 10) return 0;
	rr->type = get_u16(m + at);
	rr->ttl = get_u32(m + at + 4);
	rr->rdlen = get_u16(m + at + 8);
	rr->rdata = m + at + 10;
	if (len - at - 10 < rr->rdlen) return 0;
	*off = at + 10 + rr->rdlen;
	return 1;
}

/* The id of an identity sent as bytes: the text when it is printable ASCII, else "0x" and
 * its bytes in hex (the record file stays ASCII, and binary NSIDs stay apart). */
static int dns_identity(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] >= 0x20 && p[i] < 0x7f) i++;
	if (i == n) return intern((const char *)p, n);
	static const char digits[] = "0123456789abcdef";
	char hex[MAX_IDENT];
	size_t k = 2;
	memcpy(hex, "0x", 2);
	for (i = 0; i < n && k + 2 <= sizeof(hex); i++) {
		hex[k++] = digits[p[i] >> 4];
		hex[k++] = digits[p[i] & 15];
	}
	return intern(hex, k);
}

/* The RCODE of an answer whose header and question are checked (with the OPT's extended
 * bits), its answer count and the answering instance's id (-1: none); RCODE -1 when a record
 * overruns the message. */
static int64_t read_answer(const struct dns_query *q, const unsigned char *m, size_t len,
			   unsigned *answers, int *id)
{
	unsigned an = get_u16(m + 6), first_additional = an + get_u16(m + 8);
	unsigned total = first_additional + get_u16(m + 10);
	int64_t rcode = m[3] & 0x0f;
	const unsigned char *who = NULL;
	size_t who_len = 0, off = DNS_HEADER + q->question_len;
	int opt = 0;
	*answers = an;
	*id = -1;
	for (unsigned i = 0; i < total; i++) {
		struct rr rr;
		if (!read_rr(m, len, &off, &rr)) return -1;
		if (i == 0 && an && q->identity == IDENT_CHAOS && rr.type == RR_TXT) {
			if (rr.rdlen == 0 || rr.rdata[0] >= rr.rdlen) return -1;
			who = rr.rdata + 1;
			who_len = rr.rdata[0];
		}
		if (i >= first_additional && rr.type == RR_OPT && !opt) {
			opt = 1;
			rcode |= (int64_t)(rr.ttl >> 24) << 4;
			for (size_t o = 0; o < rr.rdlen;) {
				if (rr.rdlen - o < 4) return -1;
				uint16_t code = get_u16(rr.rdata + o);
				uint16_t olen = get_u16(rr.rdata + o + 2);
				o += 4;
				if (rr.rdlen - o < olen) return -1;
				if (code == EDNS_NSID && q->identity == IDENT_NSID) {
					who = rr.rdata + o;
					who_len = olen;
				}
				o += olen;
			}
		}
	}
	if (who) *id = dns_identity(who, who_len);
	return rcode;
}

static void on_dns(struct flow *f, const struct dns_query *q, const unsigned char *m,
		   size_t len, int64_t recv, int64_t read_at)
{
	/* QR set, opcode QUERY, our one question */
	if (len < DNS_HEADER + q->question_len || (m[2] & 0xf8) != 0x80 || get_u16(m + 4) != 1 ||
	    !same_question(q, m + DNS_HEADER) || g.next_seq == 0) {
		g.c.bad++;
		return;
	}
	/* the newest seq sent with the ID's 16 bits; the window is shorter than 2^16 seqs */
	uint64_t newest = g.next_seq - 1, back = (uint16_t)(newest - get_u16(m));
	if (back > newest) {
		g.c.bad++;
		return;
	}
	uint64_t seq = newest - back;
	int64_t sent = f->sent_ns[seq % g.window], offset;
	if (!first_answer(f, seq, sent, recv, &offset)) return;
	unsigned answers;
	int id;
	int64_t rcode = read_answer(q, m, len, &answers, &id);
	put_answer(f, seq, offset, sent, recv, read_at, rcode == 0 && answers > 0, rcode, id);
}

static void on_reply(struct flow *f, const unsigned char *data, size_t len, int64_t recv,
		     int64_t read_at)
{
	const struct dns_query *q = g.targets[f->target].dns;
	if (q)
		on_dns(f, q, data, len, recv, read_at);
	else
		on_echo(f, data, len, recv, read_at);
}

/* Kernel receive stamp (realtime) on the monotonic clock, or the clock now. */
static int64_t recv_time(struct msghdr *msg, int64_t mono, int64_t real_minus_mono)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			int64_t t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - real_minus_mono;
			if (ts.tv_sec == 0 || t > mono) return mono;
			return t;
		}
	}
	return mono;
}

static void drain_flow(struct flow *f)
{
	static unsigned char bufs[BATCH][RX_SIZE];
	static char ctrl[BATCH][CMSG_SPACE(sizeof(struct timespec)) + 64];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){bufs[i], RX_SIZE};
			msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1,
							  .msg_control = ctrl[i],
							  .msg_controllen = sizeof(ctrl[i])};
			msgs[i].msg_len = 0;
		}
		int n = recvmmsg(f->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno == EINTR) continue;
			return; /* EAGAIN, or a queued ICMP error: nothing to read now */
		}
		int64_t mono = now_ns();
		int64_t offset = clock_ns(CLOCK_REALTIME) - mono;
		mono = now_ns();
		for (int i = 0; i < n; i++)
			on_reply(f, bufs[i], msgs[i].msg_len, recv_time(&msgs[i].msg_hdr, mono, offset),
				 mono);
		if (n < BATCH) return;
	}
}

/* ---------- set-up ---------- */

static void add_target(const char *spec)
{
	if (g.ntargets >= MAX_TARGETS) die("at most %d targets", MAX_TARGETS);
	const char *eq = strchr(spec, '='), *colon = strrchr(spec, ':');
	if (!eq || !colon || colon < eq || eq == spec || (size_t)(eq - spec) > MAX_NAME)
		die("--target must be SERVICE=IP:PORT, not '%s'", spec);
	struct target *t = &g.targets[g.ntargets++];
	memcpy(t->name, spec, (size_t)(eq - spec));
	for (const char *p = t->name; *p; p++)
		if (*p <= ' ') die("service name '%s' contains blanks", t->name);
	char ip[64];
	const char *from = eq + 1;
	size_t iplen = (size_t)(colon - from);
	if (iplen >= 2 && from[0] == '[' && from[iplen - 1] == ']') { /* [IPv6]:PORT */
		from++;
		iplen -= 2;
	}
	if (iplen == 0 || iplen >= sizeof(ip)) die("bad address in '%s'", spec);
	memcpy(ip, from, iplen);
	ip[iplen] = 0;
	uint16_t port = htons((uint16_t)parse_int(colon + 1, "port", 1, 65535));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&t->addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&t->addr;
	if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = port;
		t->addrlen = sizeof(*v4);
	} else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = port;
		t->addrlen = sizeof(*v6);
	} else {
		die("bad IP address '%s'", ip);
	}
	for (int k = 0; k < g.ntargets - 1; k++)
		if (!strcmp(g.targets[k].name, t->name) && g.targets[k].addr.ss_family == t->addr.ss_family)
			die("service '%s' has two targets of one address family", t->name);
}

/* --dns SERVICE=NAME,QTYPE,IDENTITY */
static void add_dns(const char *spec)
{
	if (g.nqueries >= MAX_TARGETS) die("at most %d --dns options", MAX_TARGETS);
	char copy[MAX_NAME + DNS_MAX_NAME + 32];
	if (strlen(spec) >= sizeof(copy)) die("--dns value too long: '%s'", spec);
	strcpy(copy, spec);
	char *name = strchr(copy, '=');
	char *qtype = name ? strchr(name, ',') : NULL;
	char *identity = qtype ? strchr(qtype + 1, ',') : NULL;
	if (!identity || name == copy || name - copy > MAX_NAME)
		die("--dns must be SERVICE=NAME,QTYPE,IDENTITY, not '%s'", spec);
	*name++ = *qtype++ = *identity++ = 0;
	struct dns_query *q = &g.queries[g.nqueries++];
	for (int k = 0; k < g.nqueries - 1; k++)
		if (!strcmp(g.queries[k].service, copy)) die("service '%s' has two --dns", copy);
	strcpy(q->service, copy);
	q->qtype = (int)parse_int(qtype, "the DNS query type", 1, 65535);
	int known = 0;
	for (int k = 0; k < (int)(sizeof(identity_names) / sizeof(*identity_names)); k++)
		if (!strcmp(identity, identity_names[k])) {
			q->identity = (enum identity)k;
			known = 1;
		}
	if (!known) die("DNS identity must be nsid, chaos or none, not '%s'", identity);
	if (strlen(name) > DNS_MAX_NAME + 1) die("DNS name '%s' is too long", name);
	strcpy(q->name, name);
	encode_query(q);
}

/* Every --dns applies to every target of its service (a dual-stack service has two). */
static void attach_queries(void)
{
	for (int k = 0; k < g.nqueries; k++) {
		int found = 0;
		for (int t = 0; t < g.ntargets; t++)
			if (!strcmp(g.targets[t].name, g.queries[k].service)) {
				g.targets[t].dns = &g.queries[k];
				found = 1;
			}
		if (!found)
			die("--dns names service '%s', which has no --target",
			    g.queries[k].service);
	}
}

static void parse_args(int argc, char **argv)
{
	g.interval_ns = 0;
	g.flows_per_target = 1;
	g.late_ns = 2000000000LL;
	g.drain_ns = 200000000LL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--rotate")) {
			g.rotate = 1;
			continue;
		}
		if (i + 1 >= argc) die("%s needs a value", a);
		const char *v = argv[++i];
		if (!strcmp(a, "--interval-us"))
			g.interval_ns = parse_int(v, "--interval-us", 10, 60000000) * 1000;
		else if (!strcmp(a, "--out")) g.out_path = v;
		else if (!strcmp(a, "--target")) add_target(v);
		else if (!strcmp(a, "--dns")) add_dns(v);
		else if (!strcmp(a, "--flows"))
			g.flows_per_target = (int)parse_int(v, "--flows", 1, MAX_FLOWS);
		else if (!strcmp(a, "--duration-ms"))
			g.duration_ns = parse_int(v, "--duration-ms", 0, 1LL << 40) * 1000000;
		else if (!strcmp(a, "--drain-ms"))
			g.drain_ns = parse_int(v, "--drain-ms", 0, 60000) * 1000000;
		else if (!strcmp(a, "--late-ms"))
			g.late_ns = parse_int(v, "--late-ms", 1, 60000) * 1000000;
		else if (!strcmp(a, "--rt-priority"))
			g.rt_priority = (int)parse_int(v, "--rt-priority", 0, 99);
		else die("unknown option %s", a);
	}
	if (!g.interval_ns || !g.out_path || !g.ntargets)
		die("usage: prober --interval-us N --out FILE --target SERVICE=IP:PORT [--target ...] "
		    "[--dns SERVICE=NAME,QTYPE,IDENTITY ...] [--flows N] [--rotate] [--duration-ms D] "
		    "[--drain-ms D] [--late-ms L] [--rt-priority P]");
	attach_queries();
	if (g.nqueries && g.late_ns / g.interval_ns + 2 >= DNS_MAX_WINDOW)
		die("DNS probes are told apart by a 16-bit ID: --late-ms / --interval-us must stay "
		    "below %d probes, not %lld", DNS_MAX_WINDOW - 2,
		    (long long)(g.late_ns / g.interval_ns));
}

static void watch(struct src *s, int fd, enum src_kind kind)
{
	s->kind = kind;
	s->fd = fd;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static int flow_socket(int family, uint16_t *port)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) die("socket: %s", strerror(errno));
	int one = 1, size = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	struct sockaddr_storage any = {.ss_family = (sa_family_t)family};
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if (bind(fd, (struct sockaddr *)&any, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&any, &len) < 0)
		die("bind: %s", strerror(errno));
	/* the port sits at the same offset in both families' addresses */
	*port = ntohs(((struct sockaddr_in *)&any)->sin_port);
	return fd;
}

static void open_flows(void)
{
	g.nflows = g.ntargets * g.flows_per_target;
	g.flows = calloc((size_t)g.nflows, sizeof(*g.flows));
	size_t words = (g.window + 63) / 64;
	if (!g.flows) die("out of memory");
	for (int i = 0; i < g.nflows; i++) {
		struct flow *f = &g.flows[i];
		f->target = (uint16_t)(i / g.flows_per_target);
		f->index = (uint16_t)(i % g.flows_per_target);
		f->seen = calloc(words, sizeof(uint64_t));
		if (!f->seen) die("out of memory");
		if (g.targets[f->target].dns && !(f->sent_ns = calloc(g.window, sizeof(int64_t))))
			die("out of memory");
		f->fd = flow_socket(g.targets[f->target].addr.ss_family, &f->port);
	}
}

static void write_header(void)
{
	/* format 1 without --rotate: those files stay as they were */
	int64_t head[7] = {g.rotate ? 2 : 1, g.nonce, g.interval_ns, g.flows_per_target,
			   g.late_ns, g.start_ns, 1};
	put_record('P', head, g.rotate ? 7 : 6);
	for (int t = 0; t < g.ntargets; t++) {
		const struct target *target = &g.targets[t];
		char ip[INET6_ADDRSTRLEN];
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)&target->addr;
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&target->addr;
		if (target->addr.ss_family == AF_INET)
			inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
		else
			inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
		room();
		g.used += (size_t)snprintf(g.out + g.used, OUT_ROOM, "T %d %s %s %u\n", t,
					   target->name, ip, ntohs(v4->sin_port));
	}
	for (int t = 0; t < g.ntargets; t++) {
		const struct dns_query *q = g.targets[t].dns;
		if (!q) continue;
		room();
		g.used += (size_t)snprintf(g.out + g.used, OUT_ROOM, "D %d %d %s %s\n", t,
					   q->identity == IDENT_CHAOS ? RR_TXT : q->qtype,
					   identity_names[q->identity], q->name);
	}
	for (int i = 0; i < g.nflows; i++) {
		int64_t rec[3] = {g.flows[i].target, g.flows[i].index, g.flows[i].port};
		put_record('F', rec, 3);
	}
	flush_out();
}

static void setup(void)
{
	precise_timing(g.rt_priority);
	if (getrandom(&g.nonce, sizeof(g.nonce), 0) != sizeof(g.nonce)) g.nonce = (uint32_t)getpid();
	g.nonce &= 0x7fffffffu;
	g.window = (uint64_t)(g.late_ns / g.interval_ns) + 2;
	g.tick_ns = calloc(g.window, sizeof(int64_t));
	g.out = malloc(OUT_SIZE);
	if (!g.tick_ns || !g.out) die("out of memory");
	g.outfd = open(g.out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (g.outfd < 0) die("cannot open %s: %s", g.out_path, strerror(errno));
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g.epfd < 0) die("epoll_create1: %s", strerror(errno));
	open_flows();
	static struct src s_tick, s_flush, s_sig;
	g.tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	g.flushfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (g.tickfd < 0 || g.flushfd < 0) die("timerfd_create: %s", strerror(errno));
	watch(&s_tick, g.tickfd, SRC_TICK);
	watch(&s_flush, g.flushfd, SRC_FLUSH);
	watch(&s_sig, signal_fd(), SRC_SIGNAL);
	g.start_ns = now_ns() + g.interval_ns;
	write_header();
	struct itimerspec tick = {to_timespec(g.interval_ns), to_timespec(g.start_ns)};
	struct itimerspec flush = {to_timespec(FLUSH_NS), to_timespec(FLUSH_NS)};
	if (timerfd_settime(g.tickfd, TFD_TIMER_ABSTIME, &tick, NULL) < 0 ||
	    timerfd_settime(g.flushfd, 0, &flush, NULL) < 0)
		die("timerfd_settime: %s", strerror(errno));
}

/* ---------- main loop ---------- */

static void drain_all(void)
{
	for (int i = 0; i < g.nflows; i++) drain_flow(&g.flows[i]);
}

/* Stop sending; the tick timer becomes a one-shot for the end of the drain. */
static void begin_stop(void)
{
	if (g.stopping) {
		g.done = 1;
		return;
	}
	g.stopping = 1;
	struct itimerspec drain = {{0, 0}, to_timespec(now_ns() + g.drain_ns)};
	if (g.drain_ns == 0 || timerfd_settime(g.tickfd, TFD_TIMER_ABSTIME, &drain, NULL) < 0)
		g.done = 1;
}

static void on_tick(void)
{
	uint64_t expirations;
	if (read(g.tickfd, &expirations, sizeof(expirations)) != sizeof(expirations)) return;
	drain_all();
	if (g.stopping) {
		g.done = 1;
		return;
	}
	g.slots += expirations;
	if (expirations > 1) {
		int64_t skip[2] = {now_ns(), (int64_t)(expirations - 1)};
		put_record('K', skip, 2);
		g.c.skipped += expirations - 1;
	}
	if (g.duration_ns && (int64_t)(g.slots - 1) * g.interval_ns >= g.duration_ns) {
		begin_stop();
		return;
	}
	send_tick();
}

static void dispatch(struct src *s)
{
	uint64_t count;
	struct signalfd_siginfo si;
	switch (s->kind) {
	case SRC_TICK:
		on_tick();
		break;
	case SRC_FLUSH:
		if (read(s->fd, &count, sizeof(count)) != sizeof(count)) break;
		drain_all();
		flush_out();
		break;
	case SRC_SIGNAL:
		while (read(s->fd, &si, sizeof(si)) == sizeof(si)) begin_stop();
		break;
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	setup();
	struct epoll_event evs[64];
	while (!g.done) {
		int n = epoll_wait(g.epfd, evs, 64, -1);
		if (n < 0) {
			if (errno == EINTR) continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n && !g.done; i++) dispatch(evs[i].data.ptr);
	}
	drain_all();
	int64_t stats[10] = {now_ns(), (int64_t)g.c.ticks, (int64_t)g.c.sent, (int64_t)g.c.errors,
			     (int64_t)g.c.replies, (int64_t)g.c.dups, (int64_t)g.c.late,
			     (int64_t)g.c.bad, (int64_t)g.c.skipped, (int64_t)g.c.failed};
	put_record('X', stats, g.nqueries ? 10 : 9);
	flush_out();
	close(g.outfd);
	return 0;
}
