// health_server.hpp: thin C++17 RAII wrappers over health_server.h.
//
// Each wrapper owns what the C API says must be freed, frees it in its
// destructor, and is movable, not copyable. Errors are thrown as
// health_server::Error (the status and hs_last_error()'s message).
//
//   health_server::Server health(settings);          // hs_server_new
//   epoll_ctl(ep, EPOLL_CTL_ADD, health.fd(), &ev);
//   while (auto ask = health.next_ask())              // when fd is readable
//       ask->answer(HS_STATE_OK, "serving");          // hs_answer
//
// Hand-written (cbindgen writes the C header only); docs/C.md.
#ifndef HEALTH_SERVER_HPP
#define HEALTH_SERVER_HPP

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "health_server.h"

namespace health_server {

// A failed call: its status and why.
class Error : public std::runtime_error {
public:
    Error(int status, const char *why) : std::runtime_error(why), status_(status) {}
    int status() const noexcept { return status_; }

private:
    int status_;
};

// Throws for a negative status; returns it otherwise.
inline int check(int status) {
    if (status < 0) throw Error(status, hs_last_error());
    return status;
}

// What an answer says (hs_landmark).
class Landmark {
public:
    Landmark(hs_state state, const std::string &detail) {
        check(hs_landmark_new(state, detail.c_str(), &l_));
    }
    Landmark(Landmark &&o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
    Landmark &operator=(Landmark &&o) noexcept {
        std::swap(l_, o.l_);
        return *this;
    }
    Landmark(const Landmark &) = delete;
    Landmark &operator=(const Landmark &) = delete;
    ~Landmark() { hs_landmark_free(l_); }

    Landmark &weight(int w) { check(hs_landmark_set_weight(l_, w)); return *this; }
    Landmark &component(const std::string &name, hs_state state, const std::string &detail) {
        check(hs_landmark_add_component(l_, name.c_str(), state, detail.c_str()));
        return *this;
    }
    Landmark &field(const std::string &key, int64_t value) {
        check(hs_landmark_add_field_int(l_, key.c_str(), value));
        return *this;
    }
    Landmark &field(const std::string &key, const std::string &value) {
        check(hs_landmark_add_field_str(l_, key.c_str(), value.c_str()));
        return *this;
    }
    const hs_landmark *get() const noexcept { return l_; }

private:
    hs_landmark *l_ = nullptr;
};

// One ask (hs_ask): answered once, or dropped unanswered when destroyed.
class Ask {
public:
    explicit Ask(hs_ask *a) noexcept : a_(a) {}
    Ask(Ask &&o) noexcept : a_(std::exchange(o.a_, nullptr)) {}
    Ask &operator=(Ask &&o) noexcept {
        std::swap(a_, o.a_);
        return *this;
    }
    Ask(const Ask &) = delete;
    Ask &operator=(const Ask &) = delete;
    ~Ask() { hs_ask_drop(a_); }

    void answer(hs_state state, const std::string &detail, int weight = -1) {
        check(hs_answer(std::exchange(a_, nullptr), state, detail.c_str(), weight));
    }
    void answer(const Landmark &l) {
        check(hs_answer_landmark(std::exchange(a_, nullptr), l.get()));
    }

private:
    hs_ask *a_;
};

// A running endpoint (hs_server); stopped and freed when destroyed.
class Server {
public:
    explicit Server(const hs_settings &s) { check(hs_server_new(&s, &s_)); }
    Server(Server &&o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    Server &operator=(Server &&o) noexcept {
        std::swap(s_, o.s_);
        return *this;
    }
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;
    ~Server() { hs_server_free(s_); }

    // The descriptor to wait on (ask mode).
    int fd() const { return check(hs_server_fd(s_)); }
    // The waiting ask, if any (ask mode).
    std::optional<Ask> next_ask() {
        hs_ask *a = nullptr;
        if (check(hs_server_next_ask(s_, &a)) == 1) return Ask(a);
        return std::nullopt;
    }
    void publish(const Landmark &l) { check(hs_publish(s_, l.get())); }
    void touch() { check(hs_publish_touch(s_)); }
    void drain() { check(hs_server_drain(s_)); }
    void resume() { check(hs_server_resume(s_)); }
    int port() const { return check(hs_server_port(s_)); }

private:
    hs_server *s_ = nullptr;
};

}  // namespace health_server

#endif  // HEALTH_SERVER_HPP
