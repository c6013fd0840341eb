/* A minimal keep-alive HTTP/1.1 responder for the client-side benchmark
 * (tools/bench/green_bench.py): every request (up to its blank line) gets
 * "200 OK" with a 2-byte body.  epoll, edge-triggered, single-threaded:
 * the server must never be what limits the clients under test.
 *
 *   http_keepalive --host 127.0.0.1 --port 8080
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                           "Content-Type: text/plain\r\n\r\nok";

struct conn { int fd; int state; };   /* state: bytes of "\r\n\r\n" seen */

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8080, i, one = 1;
    char buf[65536];
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (void *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
        perror("http_keepalive: listen");
        return 1;
    }
    printf("http_keepalive: listening on %s:%d\n", host, port);
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event cev = { .events = EPOLLIN | EPOLLET, .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(c->fd, buf, sizeof buf, 0), k;
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN) break;
                    close(c->fd);
                    free(c);
                    break;
                }
                for (k = 0; k < r; k++) {
                    char ch = buf[k];
                    c->state = (ch == "\r\n\r\n"[c->state]) ? c->state + 1
                             : (ch == '\r') ? 1 : 0;
                    if (c->state == 4) {
                        c->state = 0;
                        send(c->fd, RESP, sizeof RESP - 1, MSG_NOSIGNAL);
                    }
                }
            }
        }
    }
}
