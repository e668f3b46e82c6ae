// answer_once.cpp: the C++ wrappers (health_server.hpp) in a few lines. It
// starts an endpoint on ADDR, waits (poll) for one ask, answers it with a
// landmark that has a weight, a component and fields, and exits 0; 1 if no
// ask came within 10 s. examples/tests/services.rs checks the answer.
//
//   target/c/answer_once 127.0.0.1:9100
#include <poll.h>

#include <cstdio>

#include "health_server.hpp"

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: answer_once ADDR\n");
        return 2;
    }
    try {
        hs_settings s;
        hs_settings_init(&s);
        s.bind = argv[1];
        health_server::Server health(s);
        std::printf("listening\n");
        std::fflush(stdout);
        pollfd p{health.fd(), POLLIN, 0};
        while (poll(&p, 1, 10000) == 1) {
            if (auto ask = health.next_ask()) {
                health_server::Landmark l(HS_STATE_DEGRADED, "from C++");
                l.weight(7).component("cache", HS_STATE_FAIL, "down").field("clients", 2).field("lang", "c++");
                ask->answer(l);
                return 0;
            }
        }
        std::fprintf(stderr, "answer_once: no ask within 10 s\n");
        return 1;
    } catch (const health_server::Error &e) {
        std::fprintf(stderr, "answer_once: %s (%d)\n", e.what(), e.status());
        return 1;
    }
}
