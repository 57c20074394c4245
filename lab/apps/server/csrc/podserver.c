/*
 * podserver: the anycast server of one pod, answering every service with its identity.
 *
 *   podserver --pod NAME --address IPV4 [--address6 IPV6] --health-port PORT
 *             --unready-flag PATH [--nice N]
 *             [--service udp|tcp PORT NAME IDENTITY ...]
 *
 * Started by `python -m lab.apps.server --spec FILE` (lab/apps/server/main.py), which
 * validates the pod's spec and turns it into these arguments; IDENTITY is the compact JSON
 * the probers read. It runs in the namespace it is started in, bound to the pod's address:
 * - UDP services echo each datagram followed by "\n" and IDENTITY;
 * - TCP services answer each line (up to 4 KiB; a trailing CR is dropped) with the line, a
 *   space, IDENTITY and "\n"; connections stay open until the client closes them; a longer
 *   line closes the connection; a client that does not read its replies is not read either
 *   once 256 KiB wait for it;
 * - an HTTP/1.0 health port (IPv4) serves GET (or HEAD) /live, always 200, and /ready: 200,
 *   or 503 while the unready flag file exists, as a Kubernetes httpGet probe target;
 * - in a dual-stack pod every service answers on the IPv6 address too, on the port its IPv4
 *   socket got (port 0: one chosen by the kernel);
 * - on SIGTERM, SIGINT or SIGHUP it drains, as a terminating pod's server does: it accepts
 *   no new connection and closes its health port, answers datagrams and its open service
 *   connections, and exits 0 when the last of those closes (or when it is killed at the
 *   end of its grace period).
 * When every socket is bound it prints on stderr "anycast server POD ready on ADDRESS: ...",
 * naming each service's port. A socket that cannot be bound: a message and exit 1; bad
 * arguments: exit 2.
 *
 * The server is part of the instrument (every probe's round trip includes its answer), and
 * a lab runs one per pod, hundreds at scale: one thread, one epoll loop, a few hundred KB.
 * It runs at nice --nice (default -10) where the kernel allows, so that on a busy machine
 * it gets a CPU before the ordinary processes around it; not real-time, which kept the
 * routers' BFD daemons from running under load (docs/benchmarks.md, "fidelity").
 */
#define _GNU_SOURCE
#define ANYLAB_PROGRAM "podserver"
#include "anylab.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LINE 4096
#define MAX_HEALTH_REQUEST 8192
#define RECV_SIZE 65535
#define UDP_BURST 256 /* datagrams served per wake-up before other sockets get their turn */
/* A UDP service's receive buffer, as DNS servers are told to set (NSD's so-rcvbuf: 4m): the
 * default (about 200 small datagrams) overflows when the server is off the CPU for tens of
 * ms while the flows that a failure moved onto its pod pour in. */
#define UDP_RCVBUF (4 * 1024 * 1024)
#define OUTBOX_LIMIT (256 * 1024)
#define LISTEN_BACKLOG 1024
#define MAX_SERVICES 64
#define MAX_EVENTS 64

enum kind { SIGNALS, DATAGRAMS, LISTENER, CONNECTION };

/* What an epoll event points at: every registered object starts with one. */
struct handle {
	enum kind kind;
	int fd;
};

struct buffer {
	char *data;
	size_t len, cap;
};

struct listener {
	struct handle h;
	const char *suffix; /* "\n" IDENTITY (UDP), " " IDENTITY "\n" (TCP), NULL: health */
	size_t suffix_len;
};

struct connection {
	struct handle h;
	const char *suffix; /* as its listener's */
	size_t suffix_len;
	struct buffer inbox, outbox;
	uint32_t events;
	bool closing;
};

struct service {
	bool udp;
	int port; /* as given (0: the kernel picks; the ready line names the bound one) */
	const char *name, *identity;
};

static struct {
	const char *pod, *address, *address6, *unready_flag;
	int health_port, nice;
	struct service services[MAX_SERVICES];
	int nservices;
} opt = {.health_port = -1, .nice = -10};

static int epfd;
static struct listener *streams[2 * MAX_SERVICES + 1]; /* TCP listeners: closed on drain */
static int nstreams;
static long open_services; /* open service connections (not health checks) */
static char *datagram;     /* RECV_SIZE + the longest suffix */
static size_t datagram_cap;

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) die("out of memory");
	return p;
}

static void append(struct buffer *b, const char *data, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n) cap *= 2;
		char *grown = realloc(b->data, cap);
		if (!grown) die("out of memory");
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
}

static void consume(struct buffer *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

static void watch(struct handle *h, uint32_t events, int op)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};
	if (epoll_ctl(epfd, op, h->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static char *concat(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *s = xmalloc(n);
	snprintf(s, n, "%s%s%s", a, b, c);
	return s;
}

/* ---- binding ---- */

static socklen_t sockaddr_of(int family, const char *address, int port,
			     struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, address, &sin->sin_addr) != 1)
			die("--address: not an IPv4 address: %s", address);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	if (inet_pton(AF_INET6, address, &sin6->sin6_addr) != 1)
		die("--address6: not an IPv6 address: %s", address);
	return sizeof(*sin6);
}

/* A bound socket (listening, for TCP); its port in *port. Exit 1 when it cannot bind. */
static int bind_socket(int family, int type, const char *address, int *port, const char *what)
{
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) die("socket: %s", strerror(errno));
	int one = 1;
	if (type == SOCK_DGRAM) {
		int size = UDP_RCVBUF; /* past rmem_max with CAP_NET_ADMIN, else up to it */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(family, address, *port, &ss);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    (type == SOCK_STREAM && listen(fd, LISTEN_BACKLOG) < 0)) {
		fprintf(stderr, ANYLAB_PROGRAM ": cannot bind %s %s port %d (%s): %s\n",
			type == SOCK_DGRAM ? "udp" : "tcp", address, *port, what, strerror(errno));
		exit(1);
	}
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static void add_listener(int fd, bool udp, const char *suffix)
{
	struct listener *l = xmalloc(sizeof(*l));
	*l = (struct listener){{udp ? DATAGRAMS : LISTENER, fd}, suffix,
			       suffix ? strlen(suffix) : 0};
	if (!udp) streams[nstreams++] = l;
	if (udp && RECV_SIZE + l->suffix_len > datagram_cap) {
		datagram_cap = RECV_SIZE + l->suffix_len;
		free(datagram);
		datagram = xmalloc(datagram_cap);
	}
	watch(&l->h, EPOLLIN, EPOLL_CTL_ADD);
}

/* Every service on the IPv4 address and, in a dual-stack pod, the IPv6 one; then the
 * health port. The ready line names every port bound. */
static void bind_all(struct buffer *ready)
{
	char text[512];
	for (int i = 0; i < opt.nservices; i++) {
		struct service *s = &opt.services[i];
		char *suffix = s->udp ? concat("\n", s->identity, "") : concat(" ", s->identity, "\n");
		int port = s->port;
		for (int family = 0; family < (opt.address6 ? 2 : 1); family++) {
			int fd = bind_socket(family ? AF_INET6 : AF_INET, s->udp ? SOCK_DGRAM : SOCK_STREAM,
					     family ? opt.address6 : opt.address, &port, s->name);
			add_listener(fd, s->udp, suffix);
		}
		snprintf(text, sizeof(text), "%s%s/%d (%s)", i ? ", " : "", s->udp ? "udp" : "tcp",
			 port, s->name);
		append(ready, text, strlen(text));
	}
	if (!opt.nservices) append(ready, "no services", strlen("no services"));
	int port = opt.health_port;
	add_listener(bind_socket(AF_INET, SOCK_STREAM, opt.address, &port, "health"), false, NULL);
	snprintf(text, sizeof(text), "; health tcp/%d", port);
	append(ready, text, strlen(text) + 1); /* with the NUL */
}

/* ---- UDP ---- */

static void on_datagrams(struct listener *l)
{
	for (int i = 0; i < UDP_BURST; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		ssize_t n = recvfrom(l->h.fd, datagram, RECV_SIZE, 0, (struct sockaddr *)&peer, &plen);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) return;
			continue; /* a queued ICMP error: nothing to answer */
		}
		memcpy(datagram + n, l->suffix, l->suffix_len);
		/* a full send buffer or an unreachable sender: a lost reply, as on a wire */
		sendto(l->h.fd, datagram, (size_t)n + l->suffix_len, MSG_DONTWAIT,
		       (struct sockaddr *)&peer, plen);
	}
}

/* ---- TCP ---- */

static void drop(struct connection *c)
{
	if (c->suffix) open_services--;
	close(c->h.fd); /* also leaves the epoll set */
	free(c->inbox.data);
	free(c->outbox.data);
	free(c);
}

static void on_accept(struct listener *l)
{
	for (;;) {
		int fd = accept4(l->h.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) return; /* none left, or e.g. out of descriptors: the next wake-up */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct connection *c = calloc(1, sizeof(*c));
		if (!c) die("out of memory");
		c->h = (struct handle){CONNECTION, fd};
		c->suffix = l->suffix;
		c->suffix_len = l->suffix_len;
		c->events = EPOLLIN;
		if (c->suffix) open_services++;
		watch(&c->h, c->events, EPOLL_CTL_ADD);
	}
}

/* Send what waits; false when the connection is gone (dropped). */
static bool flush(struct connection *c)
{
	if (c->outbox.len) {
		ssize_t sent = send(c->h.fd, c->outbox.data, c->outbox.len, MSG_NOSIGNAL);
		if (sent < 0 && errno != EAGAIN && errno != EINTR) {
			drop(c);
			return false;
		}
		if (sent > 0) consume(&c->outbox, (size_t)sent);
	}
	if (!c->outbox.len && c->closing) {
		drop(c);
		return false;
	}
	uint32_t events = EPOLLIN;
	if (c->outbox.len) events = EPOLLOUT | (c->outbox.len < OUTBOX_LIMIT ? EPOLLIN : 0);
	if (events != c->events) {
		c->events = events;
		watch(&c->h, events, EPOLL_CTL_MOD);
	}
	return true;
}

static bool is_space(char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }

static void http(const char *status, const char *body, bool head, char *out, size_t cap)
{
	snprintf(out, cap, "HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n%s", status, strlen(body), head ? "" : body);
}

/* The response to one health request: only its request line matters. */
static void health_response(const char *request, size_t len, char *out, size_t cap)
{
	const char *end = memchr(request, '\n', len);
	if (end) len = (size_t)(end - request);
	const char *word[2];
	size_t wlen[2];
	int words = 0;
	for (size_t i = 0; i < len && words < 2;) {
		while (i < len && is_space(request[i])) i++;
		if (i == len) break;
		word[words] = request + i;
		while (i < len && !is_space(request[i])) i++;
		wlen[words] = (size_t)(request + i - word[words]);
		words++;
	}
	bool alpha = words > 0;
	for (size_t i = 0; alpha && i < wlen[0]; i++)
		alpha = isalpha((unsigned char)word[0][i]); /* ASCII only: the C locale */
	if (words < 2 || !alpha) {
		http("400 Bad Request", "bad request\n", false, out, cap);
		return;
	}
	bool get = wlen[0] == 3 && !memcmp(word[0], "GET", 3);
	bool head = wlen[0] == 4 && !memcmp(word[0], "HEAD", 4);
	if (!get && !head) {
		http("405 Method Not Allowed", "method not allowed\n", false, out, cap);
		return;
	}
	const char *query = memchr(word[1], '?', wlen[1]);
	size_t tlen = query ? (size_t)(query - word[1]) : wlen[1];
	if (tlen == 5 && !memcmp(word[1], "/live", 5))
		http("200 OK", "ok", head, out, cap);
	else if (tlen == 6 && !memcmp(word[1], "/ready", 6) && access(opt.unready_flag, F_OK) == 0)
		http("503 Service Unavailable", "unready", head, out, cap);
	else if (tlen == 6 && !memcmp(word[1], "/ready", 6))
		http("200 OK", "ok", head, out, cap);
	else
		http("404 Not Found", "not found\n", head, out, cap);
}

static bool health_request_complete(const struct buffer *b)
{
	return memmem(b->data, b->len, "\r\n\r\n", 4) || memmem(b->data, b->len, "\n\n", 2) ||
	       b->len >= MAX_HEALTH_REQUEST;
}

/* Answer the complete lines of the inbox; false when a line is longer than MAX_LINE. */
static bool take_lines(struct connection *c)
{
	size_t start = 0;
	char *nl;
	while ((nl = memchr(c->inbox.data + start, '\n', c->inbox.len - start))) {
		size_t len = (size_t)(nl - (c->inbox.data + start));
		if (len && c->inbox.data[start + len - 1] == '\r') len--;
		if (len > MAX_LINE) return false;
		append(&c->outbox, c->inbox.data + start, len);
		append(&c->outbox, c->suffix, c->suffix_len);
		start = (size_t)(nl - c->inbox.data) + 1;
	}
	consume(&c->inbox, start);
	return c->inbox.len <= MAX_LINE;
}

/* Read what the client sent and answer it; false when the connection is gone. */
static bool on_readable(struct connection *c)
{
	static char chunk[RECV_SIZE];
	ssize_t n = recv(c->h.fd, chunk, sizeof(chunk), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
	if (n <= 0) {
		drop(c);
		return false;
	}
	append(&c->inbox, chunk, (size_t)n);
	if (!c->suffix) {
		if (!health_request_complete(&c->inbox)) return true;
		char response[512];
		health_response(c->inbox.data, c->inbox.len, response, sizeof(response));
		c->closing = true;
		append(&c->outbox, response, strlen(response));
		return flush(c);
	}
	size_t before = c->outbox.len;
	if (!take_lines(c)) {
		drop(c); /* a line longer than the protocol allows */
		return false;
	}
	return c->outbox.len == before || flush(c);
}

static void on_connection(struct connection *c, uint32_t events)
{
	/* an error or hang-up is reported as readable and writable, as Python's selectors do */
	if (events & (EPOLLERR | EPOLLHUP)) events |= EPOLLIN | EPOLLOUT;
	if ((events & EPOLLOUT) && !flush(c)) return;
	if ((events & EPOLLIN) && !c->closing) on_readable(c);
}

/* Draining: no new connection, no health port. */
static void stop_accepting(void)
{
	for (int i = 0; i < nstreams; i++) {
		close(streams[i]->h.fd);
		free(streams[i]);
	}
	nstreams = 0;
}

/* ---- arguments ---- */

static int port_arg(const char *flag, const char *text)
{
	char *end;
	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno || *end || end == text || value < 0 || value > 65535)
		die("%s: not a port (0-65535): %s", flag, text);
	return (int)value;
}

static void usage(void)
{
	die("usage: podserver --pod NAME --address IPV4 [--address6 IPV6] --health-port PORT "
	    "--unready-flag PATH [--nice N] [--service udp|tcp PORT NAME IDENTITY ...]");
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *flag = argv[i];
		int need = !strcmp(flag, "--service") ? 4 : 1;
		if (i + need >= argc) usage();
		const char *value = argv[i + 1];
		if (!strcmp(flag, "--pod")) opt.pod = value;
		else if (!strcmp(flag, "--address")) opt.address = value;
		else if (!strcmp(flag, "--address6")) opt.address6 = value;
		else if (!strcmp(flag, "--unready-flag")) opt.unready_flag = value;
		else if (!strcmp(flag, "--health-port")) opt.health_port = port_arg(flag, value);
		else if (!strcmp(flag, "--nice")) opt.nice = atoi(value);
		else if (!strcmp(flag, "--service")) {
			if (opt.nservices == MAX_SERVICES) die("more than %d services", MAX_SERVICES);
			if (strcmp(value, "udp") && strcmp(value, "tcp"))
				die("--service: protocol udp or tcp, not %s", value);
			opt.services[opt.nservices++] = (struct service){
				!strcmp(value, "udp"), port_arg(flag, argv[i + 2]), argv[i + 3], argv[i + 4]};
		} else usage();
		i += need;
	}
	if (!opt.pod || !opt.address || !opt.unready_flag || opt.health_port < 0) usage();
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) die("epoll_create1: %s", strerror(errno));
	struct handle signals = {SIGNALS, signal_fd()};
	watch(&signals, EPOLLIN, EPOLL_CTL_ADD);
	struct buffer ready = {0};
	bind_all(&ready);
	bool favoured = setpriority(PRIO_PROCESS, 0, opt.nice) == 0;
	fprintf(stderr, "anycast server %s ready on %s%s%s: %s%s\n", opt.pod, opt.address,
		opt.address6 ? " and " : "", opt.address6 ? opt.address6 : "", ready.data,
		favoured ? "" : " (nice not permitted)");
	free(ready.data);

	bool stopping = false;
	while (!stopping || open_services > 0) {
		struct epoll_event events[MAX_EVENTS];
		int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
		if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct handle *h = events[i].data.ptr;
			switch (h->kind) {
			case SIGNALS: {
				struct signalfd_siginfo info;
				while (read(h->fd, &info, sizeof(info)) == sizeof(info)) {}
				if (!stopping) {
					stopping = true;
					stop_accepting();
				}
				/* later events of this batch may name the listeners just freed */
				n = i + 1;
				break;
			}
			case DATAGRAMS: on_datagrams((struct listener *)h); break;
			case LISTENER: on_accept((struct listener *)h); break;
			case CONNECTION: on_connection((struct connection *)h, events[i].events); break;
			}
		}
	}
	return 0;
}
