//! Asking the main thread: answers, deadlines, a hung or vanished main
//! thread, shared asks, and both main-loop styles.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use health_server::{Landmark, State, Weight};

#[test]
fn plain_thread_main_loop_answers_without_any_runtime() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let main = answering(asks, || {
        Landmark::ok("serving 12 clients")
            .with_weight(Weight::new(100).unwrap())
            .with_field("clients", 12)
    });
    let reply = check(server.local_addr());
    assert_eq!(reply.state, State::Ok);
    assert_eq!(reply.detail, "serving 12 clients");
    assert_eq!(reply.weight.map(Weight::get), Some(100));
    assert_eq!(reply.fields["clients"], 12);
    assert!(reply.age_us.is_none());
    assert_eq!(main.asks_answered.load(Ordering::SeqCst), 1);
    server.shutdown_blocking();
    main.thread.join().unwrap(); // recv_blocking returns None after shutdown
}

#[test]
fn a_wakeup_loop_takes_each_ask_when_woken() {
    // The loop sleeps on a channel the wake-up writes to, as a C loop
    // sleeps on an eventfd, and never blocks on the asks themselves.
    let (woken_tx, woken_rx) = std::sync::mpsc::channel::<()>();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&wakes);
    let (asks, rx) = health_server::channel_with_wakeup(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let _ = woken_tx.send(());
    });
    let server = loopback().spawn(rx).unwrap();
    let main = std::thread::spawn(move || {
        let mut answered = 0;
        while woken_rx.recv_timeout(Duration::from_secs(5)).is_ok() {
            while let Some(ask) = asks.try_recv() {
                answered += 1;
                ask.answer(Landmark::ok(format!("answer {answered}")));
            }
            if answered == 3 {
                break;
            }
        }
        answered
    });
    for n in 1..=3 {
        let reply = check(server.local_addr());
        assert_eq!(reply.state, State::Ok);
        assert_eq!(reply.detail, format!("answer {n}"));
    }
    assert_eq!(main.join().unwrap(), 3);
    assert_eq!(wakes.load(Ordering::SeqCst), 3);
    server.shutdown_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_select_main_loop() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let addr = server.local_addr();
    let (work_tx, mut work_rx) = tokio::sync::mpsc::channel::<u32>(8);
    let main = tokio::spawn(async move {
        let mut served = 0u32;
        loop {
            tokio::select! {
                Some(n) = work_rx.recv() => served += n,
                Some(ask) = asks.recv() => ask.answer(Landmark::ok(format!("served {served}"))),
                else => break,
            }
        }
    });
    work_tx.send(5).await.unwrap();
    work_tx.send(2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = tokio::task::spawn_blocking(move || check(addr))
        .await
        .unwrap();
    assert_eq!(reply.detail, "served 7");
    drop(work_tx);
    server.shutdown().await;
    tokio::time::timeout(Duration::from_secs(5), main)
        .await
        .expect("main loop ends after shutdown")
        .unwrap();
}

#[test]
fn poll_loop_with_answer_pending() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = Arc::clone(&ticks);
    let main = std::thread::spawn(move || {
        // A game-style tick loop: never blocks on the health channel.
        while !asks.is_server_gone() {
            let tick = t.fetch_add(1, Ordering::SeqCst);
            asks.answer_pending(|| Landmark::ok(format!("tick {tick}")));
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let reply = check(server.local_addr());
    assert!(reply.detail.starts_with("tick "), "{}", reply.detail);
    assert!(reply.answer_us < 500_000);
    server.shutdown_blocking();
    main.join().unwrap();
}

#[test]
fn recv_timeout_returns_none_without_asks() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let t = Instant::now();
    assert!(asks.recv_timeout(Duration::from_millis(100)).is_none());
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(!asks.is_server_gone());
    let main = std::thread::spawn(move || {
        let ask = asks.recv_timeout(Duration::from_secs(5)).expect("an ask");
        ask.answer(Landmark::degraded("slow disk"));
    });
    assert_eq!(check(server.local_addr()).state, State::Degraded);
    main.join().unwrap();
    server.shutdown_blocking();
}

#[test]
fn hung_main_thread_fails_within_the_deadline_then_recovers() {
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .answer_deadline(Duration::from_millis(200))
        .spawn(rx)
        .unwrap();
    let addr = server.local_addr();
    let hang = Arc::new(Barrier::new(2));
    let h = Arc::clone(&hang);
    let main = std::thread::spawn(move || {
        h.wait(); // "hung" until the test releases it
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(Landmark::ok("recovered"));
        }
    });
    for _ in 0..3 {
        let t = Instant::now();
        let reply = check(addr);
        let took = t.elapsed();
        assert_eq!(reply.state, State::Fail);
        assert_eq!(reply.detail, "main thread did not answer within 200ms");
        assert_eq!(reply.answer_us, 200_000);
        assert!(took >= Duration::from_millis(190), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    hang.wait();
    let reply = check(addr);
    assert_eq!(reply.state, State::Ok);
    assert_eq!(reply.detail, "recovered");
    server.shutdown_blocking();
    main.join().unwrap();
}

#[test]
fn hung_main_thread_finds_one_ask_waiting_not_one_per_check() {
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .answer_deadline(Duration::from_millis(50))
        .spawn(rx)
        .unwrap();
    for _ in 0..5 {
        assert_eq!(check(server.local_addr()).state, State::Fail);
    }
    // The main thread "recovers" and drains its queue: exactly one ask.
    let first = asks.try_recv().expect("one ask waiting");
    assert!(asks.try_recv().is_none(), "more than one ask queued");
    first.answer(Landmark::ok("late"));
    server.shutdown_blocking();
}

#[test]
fn dropped_responder_reports_main_thread_gone() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    drop(asks);
    let t = Instant::now();
    let reply = check(server.local_addr());
    assert_eq!(reply.state, State::Fail);
    assert_eq!(reply.detail, "main thread gone");
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "should not wait for the deadline"
    );
    server.shutdown_blocking();
}

#[test]
fn responder_dropped_while_an_ask_waits_reports_gone() {
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .answer_deadline(Duration::from_secs(2))
        .spawn(rx)
        .unwrap();
    let main = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(asks); // the main thread exits with the ask unanswered
    });
    let t = Instant::now();
    let reply = check(server.local_addr());
    assert_eq!(reply.detail, "main thread gone");
    assert!(t.elapsed() < Duration::from_millis(1500));
    main.join().unwrap();
    server.shutdown_blocking();
}

#[test]
fn dropped_ask_reports_it() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let main = std::thread::spawn(move || {
        let ask = asks.recv_blocking().unwrap();
        drop(ask);
        asks // keep the channel alive until joined
    });
    let reply = check(server.local_addr());
    assert_eq!(reply.state, State::Fail);
    assert_eq!(
        reply.detail,
        "main thread dropped the ask without answering"
    );
    drop(main.join().unwrap());
    server.shutdown_blocking();
}

#[test]
fn a_storm_of_1000_checks_costs_one_answer() {
    let _ = rlimit::increase_nofile_limit(8192);
    const N: usize = 1000;
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .max_connections(N + 10)
        .max_per_source(N + 10)
        .answer_deadline(Duration::from_secs(10))
        .spawn(rx)
        .unwrap();
    let addr = server.local_addr();
    let answered = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&answered);
    let sent = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&sent);
    let main = std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            // Hold the answer until every check of the storm has been sent.
            let t = Instant::now();
            while s.load(Ordering::SeqCst) < N && t.elapsed() < Duration::from_secs(8) {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(200));
            a.fetch_add(1, Ordering::SeqCst);
            ask.answer(Landmark::ok("one answer"));
        }
    });
    // 1000 connections from 8 threads, each sending its checks before
    // reading any reply, so all 1000 are in flight together.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                let mut conns: Vec<_> = (t..N)
                    .step_by(8)
                    .map(|i| {
                        let mut c = connect(addr);
                        let req = health_proto::Request::Check(Default::default());
                        health_proto::blocking::write_frame(&mut c, &req.to_frame(i as u32))
                            .unwrap();
                        sent.fetch_add(1, Ordering::SeqCst);
                        c
                    })
                    .collect();
                conns
                    .iter_mut()
                    .map(|c| {
                        let f = health_proto::blocking::read_frame(c, 1 << 20).unwrap();
                        landmark(health_proto::Response::from_frame(&f).unwrap())
                    })
                    .filter(|r| r.state == State::Ok && r.detail == "one answer")
                    .count()
            })
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(ok, N, "every check gets the shared answer");
    assert_eq!(
        answered.load(Ordering::SeqCst),
        1,
        "the main thread answered once"
    );
    server.shutdown_blocking();
    main.join().unwrap();
}

#[test]
fn sequential_checks_each_ask_afresh() {
    let (server, main) = ok_server(loopback());
    for _ in 0..3 {
        check(server.local_addr());
    }
    assert_eq!(main.asks_answered.load(Ordering::SeqCst), 3);
    server.shutdown_blocking();
}

#[test]
fn answer_time_is_measured() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let _main = answering(asks, || {
        std::thread::sleep(Duration::from_millis(30));
        Landmark::ok("thinking")
    });
    let reply = check(server.local_addr());
    assert!(reply.answer_us >= 30_000, "{}", reply.answer_us);
    assert!(reply.answer_us < 500_000, "{}", reply.answer_us);
    server.shutdown_blocking();
}
