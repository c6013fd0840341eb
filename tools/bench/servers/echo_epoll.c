/* The reference: a plain C epoll echo server, single-threaded, the way one
 * writes it by hand for speed (edge-triggered, non-blocking, one buffer).
 * It marks the limit a Python server on the same core can approach.
 *
 * Two system calls per round trip: one recv, one send (plus an epoll_wait
 * per batch of ready connections).  Under edge-triggering a connection must
 * be read until its queue is empty, and a recv that returns less than it
 * asked for proves that on a stream socket (epoll(7)): what arrives later
 * raises a new edge.  So a short read ends the turn, with no further recv
 * just to be told EAGAIN.  The one exception is the peer's FIN: it may sit
 * behind the data a short read returned without raising another edge, so
 * when the event says EPOLLRDHUP (or HUP/ERR) the loop reads on to EOF.
 *
 *   echo_epoll --host 127.0.0.1 --port 7000
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

struct conn { int fd; char *pending; size_t off, len; };

static char buf[BUF];

static void closeconn(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Write what is pending; return 0 when all is out, 1 to wait, -1 on error. */
static int flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN ? 1 : -1;
        c->off += n;
    }
    c->off = c->len = 0;
    return 0;
}

static void on_data(int ep, struct conn *c, uint32_t events)
{
    /* Short reads prove the queue empty unless the peer also hung up. */
    int greedy = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    if (c->len) {            /* still flushing: wait for EPOLLOUT */
        int r = flush(c);
        if (r < 0) { closeconn(ep, c); return; }
        if (r > 0) return;
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;              /* writable only: nothing to read */
    for (;;) {
        ssize_t n = recv(c->fd, buf, BUF, 0), m;
        if (n == 0) { closeconn(ep, c); return; }
        if (n < 0) {
            if (errno == EAGAIN) return;
            closeconn(ep, c);
            return;
        }
        m = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (m < 0 && errno != EAGAIN) { closeconn(ep, c); return; }
        if (m < 0) m = 0;
        if (m < n) {         /* keep the rest until the socket drains */
            c->pending = realloc(c->pending, n - m);
            memcpy(c->pending, buf + m, n - m);
            c->off = 0;
            c->len = n - m;
            return;          /* EPOLLOUT brings us back to read the rest */
        }
        if (n < BUF && !greedy)
            return;          /* a short read: the queue is empty */
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7000, i, one = 1;
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (void *)&a, sizeof a) < 0 || listen(lfd, 65535) < 0) {
        perror("echo_epoll: listen");
        return 1;
    }
    printf("echo_epoll: listening on %s:%d\n", host, port);
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[512];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    struct conn *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event cev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                               .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
            } else {
                on_data(ep, evs[i].data.ptr, evs[i].events);
            }
        }
    }
}
