/*
 * landmark_service.c: the C twin of examples/landmark_service.rs. A small
 * line-protocol TCP service whose one epoll loop serves its clients and
 * answers the health endpoint's asks, so `HANG <ms>` really stops the
 * answers, as a deadlocked service would.
 *
 *   make -C examples/c
 *   target/c/landmark_service --listen 127.0.0.1:7000 --health 127.0.0.1:9100
 *
 * The line protocol (one command per line, one reply line each), as the
 * Rust examples speak it (examples/lib.rs):
 *
 *   PING                                  PONG
 *   SET <ok|degraded|drain|fail> [detail] OK
 *   WEIGHT <0-253>                        OK
 *   HANG <ms>                             OK hung <ms>ms (after the hang)
 *   QUIT                                  BYE, then the connection closes
 *
 * Anything else gets `ERR <reason>`. SIGINT and SIGTERM stop it cleanly.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "health_server.h"

#define MAX_LINE 1024             /* longer lines: an error, then close */
#define MAX_HANG_MS 600000        /* so a typo cannot hang it for a day */
#define CLIENT_IDLE_S 300         /* idle clients are closed after this */
#define MAX_CLIENTS 1024          /* more wait in the kernel's queue */

enum kind { LISTENER, ASKS, SIGNALS, CLIENT };

/* What each epoll registration points to. */
struct conn {
    enum kind kind;
    int fd;
    char buf[MAX_LINE + 1];
    size_t len;
    time_t last;
    struct conn *next; /* clients, for the idle sweep */
};

/* The main loop's state: the only place it lives. */
static struct {
    int state;
    char detail[MAX_LINE + 1];
    int weight; /* -1: none */
    uint64_t commands;
    int clients;
    struct conn *all;
} svc = {HS_STATE_OK, "serving", -1, 0, 0, NULL};

static void die(const char *what, const char *why) {
    fprintf(stderr, "landmark_service: %s: %s\n", what, why);
    exit(1);
}

/* "IP:PORT" or "[IPv6]:PORT" into a socket address. */
static int parse_addr(const char *text, struct sockaddr_storage *out, socklen_t *len) {
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof host) return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1) return -1;
    memset(out, 0, sizeof *out);
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']') return -1;
        host[n - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) return -1;
        *len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)out;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -1;
        *len = sizeof *a;
    }
    return 0;
}

static int listen_on(const char *text) {
    struct sockaddr_storage addr;
    socklen_t len;
    if (parse_addr(text, &addr, &len) != 0) die(text, "not IP:PORT or [IPv6]:PORT");
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0) die("socket", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, 128) != 0)
        die(text, strerror(errno));
    return fd;
}

static void watch_fd(int ep, struct conn *c) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl", strerror(errno));
}

static struct conn *new_conn(enum kind kind, int fd) {
    struct conn *c = calloc(1, sizeof *c);
    if (!c) die("calloc", "out of memory");
    c->kind = kind;
    c->fd = fd;
    c->last = time(NULL);
    return c;
}

static void close_client(struct conn *c) {
    for (struct conn **p = &svc.all; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    close(c->fd); /* also leaves the epoll set */
    free(c);
    svc.clients--;
}

/* Best effort, as the Rust example: a client that does not read loses it. */
static void reply(struct conn *c, const char *line) {
    char out[MAX_LINE + 64];
    int n = snprintf(out, sizeof out, "%s\n", line);
    if (n > 0) (void)!send(c->fd, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1, MSG_NOSIGNAL);
}

/* `"text"` as Rust's `{:?}` prints a string: quotes, escapes. */
static void quoted(char *out, size_t cap, const char *s) {
    size_t o = 0;
    out[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u{%x}", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

static int state_named(const char *name) {
    static const char *names[] = {"ok", "degraded", "drain", "fail"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

/* Applies one line; returns 0 to keep the client, -1 to close it. */
static int command(struct conn *c, char *line) {
    char msg[MAX_LINE * 2 + 128], q[MAX_LINE * 2];
    line = trim(line);
    char *rest = strchr(line, ' ');
    if (rest) *rest++ = '\0';
    rest = trim(rest ? rest : line + strlen(line));
    for (char *p = line; *p; p++) *p = (char)toupper((unsigned char)*p);
    if (strcmp(line, "PING") == 0) {
        svc.commands++;
        reply(c, "PONG");
    } else if (strcmp(line, "QUIT") == 0) {
        svc.commands++;
        reply(c, "BYE");
        return -1;
    } else if (strcmp(line, "SET") == 0) {
        char *detail = strchr(rest, ' ');
        if (detail) *detail++ = '\0';
        int st = state_named(rest);
        if (st < 0) {
            quoted(q, sizeof q, rest);
            snprintf(msg, sizeof msg, "ERR unknown state %s (expected ok, degraded, drain or fail)", q);
            reply(c, msg);
            return 0;
        }
        svc.commands++;
        svc.state = st;
        snprintf(svc.detail, sizeof svc.detail, "%s", detail ? trim(detail) : "");
        reply(c, "OK");
    } else if (strcmp(line, "WEIGHT") == 0) {
        char *end;
        long w = strtol(rest, &end, 10);
        if (!*rest || *end || !isdigit((unsigned char)rest[0]) || w > 255) {
            quoted(q, sizeof q, rest);
            snprintf(msg, sizeof msg, "ERR weight %s is not a number 0-253", q);
            reply(c, msg);
        } else if (w > 253) {
            snprintf(msg, sizeof msg, "ERR weight %ld is out of range 0-253", w);
            reply(c, msg);
        } else {
            svc.commands++;
            svc.weight = (int)w;
            reply(c, "OK");
        }
    } else if (strcmp(line, "HANG") == 0) {
        char *end;
        unsigned long long ms = strtoull(rest, &end, 10);
        if (!*rest || *end || !isdigit((unsigned char)rest[0])) {
            quoted(q, sizeof q, rest);
            snprintf(msg, sizeof msg, "ERR HANG takes milliseconds, not %s", q);
            reply(c, msg);
        } else if (ms > MAX_HANG_MS) {
            snprintf(msg, sizeof msg, "ERR HANG is limited to %dms", MAX_HANG_MS);
            reply(c, msg);
        } else {
            /* The loop does nothing else meanwhile: no commands, no
               landmark answers. This is the failure the endpoint detects. */
            svc.commands++;
            fprintf(stderr, "landmark_service: main loop hanging %llums\n", ms);
            struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
            while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
            snprintf(msg, sizeof msg, "OK hung %llums", ms);
            reply(c, msg);
        }
    } else if (line[0] == '\0') {
        reply(c, "ERR empty line");
    } else {
        quoted(q, sizeof q, line);
        snprintf(msg, sizeof msg, "ERR unknown command %s", q);
        reply(c, msg);
    }
    return 0;
}

/* Reads what a client sent and runs each whole line. */
static void client_readable(struct conn *c) {
    char chunk[4096];
    ssize_t n = recv(c->fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        close_client(c);
        return;
    }
    c->last = time(NULL);
    for (ssize_t i = 0; i < n; i++) {
        char ch = chunk[i];
        if (ch == '\n') {
            c->buf[c->len] = '\0';
            if (c->len > 0 && c->buf[c->len - 1] == '\r') c->buf[c->len - 1] = '\0';
            c->len = 0;
            if (command(c, c->buf) != 0) {
                close_client(c);
                return;
            }
        } else if (c->len == MAX_LINE) {
            reply(c, "ERR max line length exceeded");
            close_client(c);
            return;
        } else {
            c->buf[c->len++] = ch;
        }
    }
}

static void accept_clients(int ep, int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or out of descriptors: next time */
        if (svc.clients >= MAX_CLIENTS) {
            close(fd);
            continue;
        }
        struct conn *c = new_conn(CLIENT, fd);
        c->next = svc.all;
        svc.all = c;
        svc.clients++;
        watch_fd(ep, c);
    }
}

/* The landmark, from the loop's own state. */
static void answer_asks(hs_server *health) {
    hs_ask *ask;
    while (hs_server_next_ask(health, &ask) == 1) {
        hs_landmark *l;
        if (hs_landmark_new(svc.state, svc.detail, &l) != HS_OK) {
            fprintf(stderr, "landmark_service: %s\n", hs_last_error());
            hs_ask_drop(ask);
            continue;
        }
        hs_landmark_set_weight(l, svc.weight);
        hs_landmark_add_field_int(l, "clients", svc.clients);
        hs_landmark_add_field_int(l, "commands", (int64_t)svc.commands);
        if (hs_answer_landmark(ask, l) != HS_OK)
            fprintf(stderr, "landmark_service: %s\n", hs_last_error());
        hs_landmark_free(l);
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: landmark_service [--listen ADDR] [--health ADDR] [--agent ADDR] [--http ADDR]\n"
            "  --listen ADDR   the service's own line protocol (default 127.0.0.1:7000)\n"
            "  --health ADDR   the health endpoint (default 127.0.0.1:9100)\n"
            "  --agent ADDR    also answer HAProxy agent-check there\n"
            "  --http ADDR     also answer HTTP /healthz, /livez, /readyz there\n");
}

int main(int argc, char **argv) {
    const char *listen_addr = "127.0.0.1:7000", *health_addr = "127.0.0.1:9100";
    const char *agent = NULL, *http = NULL;
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--listen") == 0) slot = &listen_addr;
        else if (strcmp(argv[i], "--health") == 0) slot = &health_addr;
        else if (strcmp(argv[i], "--agent") == 0) slot = &agent;
        else if (strcmp(argv[i], "--http") == 0) slot = &http;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        }
        if (!slot || i + 1 == argc) {
            usage();
            return 2;
        }
        *slot = argv[++i];
    }

    /* Blocked before the endpoint starts its threads, which inherit the
       mask: SIGINT and SIGTERM then reach only the signalfd below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    hs_settings settings;
    hs_settings_init(&settings);
    settings.bind = health_addr;
    settings.agent_bind = agent;
    settings.http_bind = http;
    hs_server *health;
    if (hs_server_new(&settings, &health) != HS_OK) die(health_addr, hs_last_error());
    int listener = listen_on(listen_addr);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1", strerror(errno));
    struct conn *lc = new_conn(LISTENER, listener);
    struct conn *ac = new_conn(ASKS, hs_server_fd(health));
    struct conn *sc = new_conn(SIGNALS, signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC));
    if (sc->fd < 0) die("signalfd", strerror(errno));
    watch_fd(ep, lc);
    watch_fd(ep, ac);
    watch_fd(ep, sc);
    fprintf(stderr, "landmark_service ready: listen %s, health %s\n", listen_addr, health_addr);

    /* The main loop: one epoll for the clients, the asks and the signals. */
    int running = 1;
    while (running) {
        struct epoll_event events[64];
        int n = epoll_wait(ep, events, 64, 1000);
        if (n < 0 && errno != EINTR) die("epoll_wait", strerror(errno));
        for (int i = 0; i < n && running; i++) {
            struct conn *c = events[i].data.ptr;
            switch (c->kind) {
            case LISTENER: accept_clients(ep, c->fd); break;
            case ASKS: answer_asks(health); break;
            case SIGNALS: running = 0; break;
            case CLIENT: client_readable(c); break;
            }
        }
        time_t now = time(NULL);
        for (struct conn *c = svc.all, *next; c; c = next) {
            next = c->next;
            if (now - c->last > CLIENT_IDLE_S) close_client(c);
        }
    }

    fprintf(stderr, "landmark_service: shutting down\n");
    while (svc.all) close_client(svc.all);
    hs_server_free(health); /* closes the asks' descriptor too */
    close(listener);
    close(sc->fd);
    close(ep);
    free(lc);
    free(ac);
    free(sc);
    return 0;
}
