//! Endpoint description strings: the tokenizer, every server and client form, the case
//! rules, and bad descriptions rejected with the part named.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use twistor::endpoints::{
    AnyClientEndpoint, AnyServerEndpoint, ClientDescription, Description, ErrorKind,
    ServerDescription, SocketDomain, SocketSelector, TlsClientDescription, TlsServerDescription,
    client_from_string, parse_client, parse_server, quote_string_argument, server_from_string,
};

fn server_err(s: &str) -> String {
    match parse_server(s) {
        Ok(d) => panic!("{s:?} parsed as {d:?}"),
        Err(e) => e.to_string(),
    }
}

fn client_err(s: &str) -> String {
    match parse_client(s) {
        Ok(d) => panic!("{s:?} parsed as {d:?}"),
        Err(e) => e.to_string(),
    }
}

// ---- the tokenizer ---------------------------------------------------------------------------

#[test]
fn escaped_colon_stays_in_the_value() {
    let d = Description::parse(r"tcp:80:interface=a\:b").unwrap();
    assert_eq!(d.kind, "tcp");
    assert_eq!(d.args, ["80"]);
    assert_eq!(d.kwargs, [("interface".to_string(), "a:b".to_string())]);
}

#[test]
fn only_the_first_equals_makes_a_keyword() {
    let d = Description::parse("unix:path=run/a=b:mode=660").unwrap();
    assert_eq!(d.keyword("path"), Some("run/a=b"));
    assert_eq!(d.keyword("mode"), Some("660"));
}

#[test]
fn backslash_escapes_any_character() {
    let d = Description::parse(r"x:a\\b:c\=d:e\f").unwrap();
    assert_eq!(d.args, [r"a\b", "c=d", "ef"]);
    assert!(d.kwargs.is_empty());
}

#[test]
fn empty_parts_are_kept() {
    let d = Description::parse("x::b:").unwrap();
    assert_eq!(d.args, ["", "b", ""]);
}

#[test]
fn quote_string_argument_round_trips() {
    for value in [r"C:\path\x", "a:b=c", "plain", "", r"\:="] {
        let d = Description::parse(&format!(
            "x:{}:k={}",
            quote_string_argument(value),
            quote_string_argument(value)
        ))
        .unwrap();
        assert_eq!(d.args, [value], "{value:?}");
        assert_eq!(d.keyword("k"), Some(value), "{value:?}");
    }
}

#[test]
fn trailing_backslash_is_refused() {
    let e = server_err(r"tcp:80\");
    assert!(e.contains("backslash"), "{e}");
}

#[test]
fn a_keyword_twice_is_refused() {
    let e = server_err("tcp:80:backlog=1:backlog=2");
    assert_eq!(
        e,
        "tcp:80:backlog=1:backlog=2: keyword 'backlog' is given twice"
    );
}

// ---- servers ---------------------------------------------------------------------------------

#[test]
fn server_tcp_forms() {
    let ServerDescription::Tcp4(e) = parse_server("tcp:8080:interface=127.0.0.1").unwrap() else {
        panic!()
    };
    assert_eq!(e.port(), 8080);
    assert_eq!(e.options().interface, "127.0.0.1");
    assert_eq!(e.options().backlog, 50);

    // Positional, in Twisted's parameter order: port, interface, backlog.
    let ServerDescription::Tcp4(e) = parse_server("tcp:80:127.0.0.1:7").unwrap() else {
        panic!()
    };
    assert_eq!(
        (e.options().interface.as_str(), e.options().backlog),
        ("127.0.0.1", 7)
    );

    let ServerDescription::Tcp4(e) = parse_server("tcp:port=81:backlog=3").unwrap() else {
        panic!()
    };
    assert_eq!((e.port(), e.options().interface.as_str()), (81, ""));

    let ServerDescription::Tcp4(e) = parse_server(r"tcp:80:interface=\:\:1").unwrap() else {
        panic!()
    };
    assert_eq!(e.options().interface, "::1");
}

#[test]
fn server_tcp6_defaults_to_every_ipv6_interface() {
    let ServerDescription::Tcp6(e) = parse_server("tcp6:8080").unwrap() else {
        panic!()
    };
    assert_eq!((e.port(), e.options().interface.as_str()), (8080, "::"));
    let ServerDescription::Tcp6(e) = parse_server(r"TCP6:0:backlog=9:interface=\:\:1").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (e.options().backlog, e.options().interface.as_str()),
        (9, "::1")
    );
    let e = server_err("tcp6:80:interface=127.0.0.1");
    assert!(
        e.contains("interface '127.0.0.1' is not an IPv6 address"),
        "{e}"
    );
}

#[test]
fn server_unix_forms() {
    let ServerDescription::Unix(e) = parse_server("unix:/run/x.sock:mode=660:lockfile=1").unwrap()
    else {
        panic!()
    };
    assert_eq!(e.path(), Path::new("/run/x.sock"));
    assert_eq!(e.options().mode, 0o660);
    assert!(e.options().want_pid);

    // Twisted's defaults: mode 666, lock file on, backlog 50.
    let ServerDescription::Unix(e) = parse_server("unix:run/a.sock").unwrap() else {
        panic!()
    };
    assert_eq!(
        (e.options().mode, e.options().want_pid, e.options().backlog),
        (0o666, true, 50)
    );

    let ServerDescription::Unix(e) =
        parse_server("unix:address=run/b.sock:lockfile=0:backlog=4").unwrap()
    else {
        panic!()
    };
    assert_eq!(e.path(), Path::new("run/b.sock"));
    assert!(!e.options().want_pid);
    assert_eq!(e.options().backlog, 4);

    assert!(server_err("unix:run/a:mode=999").contains("mode '999' is not an octal file mode"));
    assert!(server_err("unix:run/a:lockfile=yes").contains("lockfile 'yes' is not 0 or 1"));
    assert_eq!(
        server_err("unix:mode=600"),
        "unix:mode=600: unix needs a address"
    );
}

#[test]
fn server_systemd_forms() {
    let ServerDescription::Systemd(e) = parse_server("systemd:domain=INET:index=0").unwrap() else {
        panic!()
    };
    assert_eq!(e.domain(), SocketDomain::Inet);
    assert_eq!(e.selector(), &SocketSelector::Index(0));
    let ServerDescription::Systemd(e) = parse_server("systemd:domain=UNIX:name=web").unwrap()
    else {
        panic!()
    };
    assert_eq!(e.domain(), SocketDomain::Unix);
    assert_eq!(e.selector(), &SocketSelector::Name("web".into()));
    assert!(matches!(
        parse_server("SYSTEMD:domain=INET6:index=2"),
        Ok(ServerDescription::Systemd(_))
    ));

    assert!(server_err("systemd:domain=INET").contains("exactly one"));
    assert!(server_err("systemd:domain=INET:index=0:name=x").contains("exactly one"));
    assert!(
        server_err("systemd:domain=IPX:index=0")
            .contains("domain 'IPX' is not one of INET, INET6, UNIX")
    );
    assert!(server_err("systemd:index=0").contains("needs a domain"));
    assert!(server_err("systemd:domain=INET:index=-1").contains("index '-1'"));
}

#[test]
fn server_ssl_parses_every_keyword() {
    let d = parse_server(
        "ssl:8443:privateKey=key.pem:certKey=cert.pem:sslmethod=SSLv23_METHOD:interface=127.0.0.1\
         :backlog=10:extraCertChain=chain.pem:dhParameters=dh.pem",
    )
    .unwrap();
    let ServerDescription::Tls(TlsServerDescription::Ssl {
        port,
        private_key,
        cert_key,
        ssl_method,
        interface,
        backlog,
        extra_cert_chain,
        dh_parameters,
        ..
    }) = d
    else {
        panic!("{d:?}")
    };
    assert_eq!(port, 8443);
    assert_eq!(private_key, Path::new("key.pem"));
    assert_eq!(cert_key, Path::new("cert.pem"));
    assert_eq!(ssl_method.as_deref(), Some("SSLv23_METHOD"));
    assert_eq!(interface, "127.0.0.1");
    assert_eq!(backlog, 10);
    assert_eq!(extra_cert_chain.as_deref(), Some(Path::new("chain.pem")));
    assert_eq!(dh_parameters.as_deref(), Some(Path::new("dh.pem")));
}

#[test]
fn server_ssl_defaults_as_twisted() {
    let ServerDescription::Tls(TlsServerDescription::Ssl {
        private_key,
        cert_key,
        backlog,
        interface,
        ..
    }) = parse_server("ssl:443").unwrap()
    else {
        panic!()
    };
    assert_eq!(private_key, Path::new("server.pem"));
    assert_eq!(cert_key, Path::new("server.pem")); // certKey defaults to privateKey
    assert_eq!((backlog, interface.as_str()), (50, ""));
    let ServerDescription::Tls(TlsServerDescription::Ssl { cert_key, .. }) =
        parse_server("ssl:443:privateKey=k.pem").unwrap()
    else {
        panic!()
    };
    assert_eq!(cert_key, Path::new("k.pem"));
    assert!(server_err("ssl:443:certkey=x").contains("unknown keyword 'certkey' for ssl"));
}

#[test]
fn server_tls_directory_forms() {
    let ServerDescription::Tls(TlsServerDescription::Directory {
        directory,
        port,
        backlog,
        interface,
        ..
    }) = parse_server("tls:/etc/certs").unwrap()
    else {
        panic!()
    };
    assert_eq!(directory, Path::new("/etc/certs"));
    assert_eq!((port, backlog, interface.as_str()), (443, 50, "::"));
    let ServerDescription::Tls(TlsServerDescription::Directory {
        port,
        backlog,
        interface,
        ..
    }) = parse_server("TLS:/etc/certs:8443:5:127.0.0.1").unwrap()
    else {
        panic!()
    };
    assert_eq!((port, backlog, interface.as_str()), (8443, 5, "127.0.0.1"));
    let ServerDescription::Tls(TlsServerDescription::Directory { port, .. }) =
        parse_server("tls:/c:port=9443").unwrap()
    else {
        panic!()
    };
    assert_eq!(port, 9443);
}

#[test]
fn ssl_server_files_are_read_when_built_and_named_when_bad() {
    // Files are read by server_from_string, not by the parser.
    assert!(parse_server("ssl:8443:privateKey=/nonexistent/k.pem").is_ok());
    let e = server_from_string("ssl:8443:privateKey=/nonexistent/k.pem").unwrap_err();
    // certKey defaults to privateKey, and the certificate is read first.
    assert!(
        matches!(&e.kind, ErrorKind::BadValue { part, value, .. }
            if part == "certKey" && value == "/nonexistent/k.pem"),
        "{e}"
    );
    assert!(e.to_string().contains("cannot be read"), "{e}");
    // The default file is server.pem in the working directory.
    let e = server_from_string("ssl:8443").unwrap_err();
    assert!(
        e.to_string()
            .contains("certKey 'server.pem' cannot be read"),
        "{e}"
    );
    // A file with no certificate in it.
    let dir = std::env::temp_dir().join(format!("twistor-epstr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a PEM file\n").unwrap();
    let e = server_from_string(&format!("ssl:0:privateKey={}", empty.display())).unwrap_err();
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    let e = client_from_string(&format!("tls:h:1:trustRoots={}", empty.display())).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "tls:h:1:trustRoots={}: trustRoots '",
            empty.display()
        )),
        "{e}"
    );
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    // A directory of trust roots with no certificate at all.
    let e = client_from_string(&format!("tls:h:1:trustRoots={}", dir.display())).unwrap_err();
    assert!(
        e.to_string().contains("is a directory with no certificate"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // A bad keyword is still reported as such.
    let e = server_from_string("ssl:8443:colour=red").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnknownKeyword { .. }), "{e}");
}

#[test]
fn sslmethod_negotiates_pins_tls_1_2_or_names_why_an_old_version_is_refused() {
    for m in [
        "TLS_METHOD",
        "SSLv23_METHOD",
        "TLS_SERVER_METHOD",
        "SSLv23_CLIENT_METHOD",
        "TLSv1_2_METHOD",
        "TLSv1_2_SERVER_METHOD",
    ] {
        assert!(
            parse_server(&format!("ssl:443:sslmethod={m}")).is_ok(),
            "{m}"
        );
    }
    for (m, version) in [
        ("TLSv1_METHOD", "TLS 1.0"),
        ("TLSv1_1_METHOD", "TLS 1.1"),
        ("SSLv3_METHOD", "SSL 3.0"),
        ("SSLv2_SERVER_METHOD", "SSL 2.0"),
    ] {
        let e = server_err(&format!("ssl:443:sslmethod={m}"));
        assert!(
            e.contains(&format!("sslmethod '{m}' pins {version}")),
            "{e}"
        );
        assert!(e.contains("insecure") && e.contains("rustls"), "{e}");
    }
    let e = server_err("ssl:443:sslmethod=nonsense");
    assert!(
        e.contains("sslmethod 'nonsense' is not a TLS method name"),
        "{e}"
    );
    assert!(parse_server("ssl:443:dhParameters=/nonexistent/dh.pem").is_ok());
}

#[test]
fn a_tls_directory_that_cannot_be_read_is_named() {
    let e = server_from_string("tls:/nonexistent/certs").unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::BadValue { part, .. } if part == "directory"),
        "{e}"
    );
    assert!(
        e.to_string().contains(
            "directory '/nonexistent/certs' cannot serve: TLS: cannot read /nonexistent/certs"
        ),
        "{e}"
    );
}

#[test]
fn server_builtin_types_are_case_sensitive() {
    assert_eq!(server_err("TCP:80"), "TCP:80: unknown endpoint type 'TCP'");
    assert_eq!(
        server_err("Unix:run/a"),
        "Unix:run/a: unknown endpoint type 'Unix'"
    );
    assert_eq!(
        server_err("SSL:443"),
        "SSL:443: unknown endpoint type 'SSL'"
    );
}

#[test]
fn server_bad_forms_name_the_part() {
    assert_eq!(server_err("tcp:abc"), "tcp:abc: port 'abc' is not a number");
    assert_eq!(
        server_err("tcp:70000"),
        "tcp:70000: port '70000' is out of range (0 to 65535)"
    );
    assert_eq!(server_err("foo:80"), "foo:80: unknown endpoint type 'foo'");
    assert_eq!(
        server_err("tcp:80:colour=red"),
        "tcp:80:colour=red: unknown keyword 'colour' for tcp"
    );
    assert_eq!(server_err("tcp"), "tcp: tcp needs a port");
    assert_eq!(
        server_err("tcp:80:backlog=x"),
        "tcp:80:backlog=x: backlog 'x' is not a non-negative whole number"
    );
    assert!(
        server_err("tcp:80:127.0.0.1:5:extra")
            .contains("too many arguments for tcp (from 'extra' on)")
    );
    assert!(
        server_err("tcp:80:port=81").contains("'port' is given both by position and as a keyword")
    );
    // A bare port is not a description (Twisted refuses it too).
    assert_eq!(server_err("6666"), "6666: unknown endpoint type '6666'");
    assert_eq!(server_err(""), ": unknown endpoint type ''");
}

#[test]
fn server_from_string_builds_each_kind() {
    assert!(matches!(
        server_from_string("tcp:0").unwrap(),
        AnyServerEndpoint::Tcp4(_)
    ));
    assert!(matches!(
        server_from_string("tcp6:0").unwrap(),
        AnyServerEndpoint::Tcp6(_)
    ));
    assert!(matches!(
        server_from_string("unix:run/x.sock").unwrap(),
        AnyServerEndpoint::Unix(_)
    ));
    assert!(matches!(
        server_from_string("systemd:domain=INET:index=0").unwrap(),
        AnyServerEndpoint::Systemd(_)
    ));
}

// ---- clients ---------------------------------------------------------------------------------

#[test]
fn client_tcp_forms() {
    let ClientDescription::Tcp4(e) = parse_client("tcp:example.com:80").unwrap() else {
        panic!()
    };
    assert_eq!((e.host(), e.port()), ("example.com", 80));
    assert_eq!(e.options().timeout, Some(Duration::from_secs(30)));
    assert_eq!(e.options().bind_address, None);

    let ClientDescription::Tcp4(e) =
        parse_client("tcp:host=h:port=8080:timeout=2.5:bindAddress=127.0.0.2").unwrap()
    else {
        panic!()
    };
    assert_eq!((e.host(), e.port()), ("h", 8080));
    assert_eq!(e.options().timeout, Some(Duration::from_millis(2500)));
    assert_eq!(
        e.options().bind_address,
        Some("127.0.0.2:0".parse::<SocketAddr>().unwrap())
    );

    // One positional argument is the host, unless host= is given: then it is the port.
    let ClientDescription::Tcp4(e) = parse_client("tcp:h:port=1").unwrap() else {
        panic!()
    };
    assert_eq!((e.host(), e.port()), ("h", 1));
    let ClientDescription::Tcp4(e) = parse_client("tcp:2:host=h").unwrap() else {
        panic!()
    };
    assert_eq!((e.host(), e.port()), ("h", 2));

    let ClientDescription::Tcp4(e) = parse_client(r"tcp:\:\:1:80:bindAddress=\:\:1").unwrap()
    else {
        panic!()
    };
    assert_eq!(e.host(), "::1");
    assert_eq!(e.options().bind_address, Some("[::1]:0".parse().unwrap()));
}

#[test]
fn client_unix_forms() {
    let ClientDescription::Unix(e) = parse_client("unix:/run/x.sock").unwrap() else {
        panic!()
    };
    assert_eq!(e.path(), Path::new("/run/x.sock"));
    assert!(!e.options().check_pid);
    let ClientDescription::Unix(e) =
        parse_client("unix:path=/run/y.sock:timeout=3:lockfile=1").unwrap()
    else {
        panic!()
    };
    assert_eq!(e.path(), Path::new("/run/y.sock"));
    assert_eq!(e.options().timeout, Some(Duration::from_secs(3)));
    assert!(e.options().check_pid);
}

#[test]
fn client_types_are_case_insensitive() {
    assert!(matches!(
        parse_client("TCP:h:1"),
        Ok(ClientDescription::Tcp4(_))
    ));
    assert!(matches!(
        parse_client("Unix:/x"),
        Ok(ClientDescription::Unix(_))
    ));
    assert!(matches!(
        parse_client("SSL:h:443"),
        Ok(ClientDescription::Tls(_))
    ));
    assert!(matches!(
        parse_client("Tls:h:443"),
        Ok(ClientDescription::Tls(_))
    ));
    // Keywords are not.
    assert!(client_err("tcp:h:1:Timeout=3").contains("unknown keyword 'Timeout' for tcp"));
}

#[test]
fn client_ssl_parses_every_keyword() {
    let ClientDescription::Tls(TlsClientDescription::Ssl {
        host,
        port,
        options,
        cert_key,
        private_key,
        ca_certs_dir,
        hostname,
        ..
    }) = parse_client(
        "ssl:host=example.com:port=443:timeout=7:bindAddress=10.0.0.1:certKey=c.pem:privateKey=k.pem\
         :caCertsDir=/etc/ca:hostname=example.com",
    )
    .unwrap()
    else {
        panic!()
    };
    assert_eq!((host.as_str(), port), ("example.com", 443));
    assert_eq!(options.timeout, Some(Duration::from_secs(7)));
    assert_eq!(options.bind_address, Some("10.0.0.1:0".parse().unwrap()));
    assert_eq!(cert_key.as_deref(), Some(Path::new("c.pem")));
    assert_eq!(private_key.as_deref(), Some(Path::new("k.pem")));
    assert_eq!(ca_certs_dir.as_deref(), Some(Path::new("/etc/ca")));
    assert_eq!(hostname.as_deref(), Some("example.com"));
}

#[test]
fn client_tls_parses_every_keyword_and_the_inner_endpoint() {
    let ClientDescription::Tls(TlsClientDescription::Tls {
        host,
        port,
        options,
        certificate,
        private_key,
        trust_roots,
        endpoint,
        ..
    }) = parse_client(
        r"tls:example.com:443:timeout=5:certificate=c.pem:privateKey=k.pem:trustRoots=/etc/ca:endpoint=tcp\:127.0.0.1\:8443",
    )
    .unwrap()
    else {
        panic!()
    };
    assert_eq!((host.as_str(), port), ("example.com", 443));
    assert_eq!(options.timeout, Some(Duration::from_secs(5)));
    assert_eq!(certificate.as_deref(), Some(Path::new("c.pem")));
    assert_eq!(private_key.as_deref(), Some(Path::new("k.pem")));
    assert_eq!(trust_roots.as_deref(), Some(Path::new("/etc/ca")));
    let Some(inner) = endpoint else { panic!() };
    let ClientDescription::Tcp4(inner) = *inner else {
        panic!()
    };
    assert_eq!((inner.host(), inner.port()), ("127.0.0.1", 8443));

    let e = client_err(r"tls:h:443:endpoint=tcp\:h\:nope");
    assert!(
        e.contains("endpoint 'tcp:h:nope' is not valid: port 'nope' is not a number"),
        "{e}"
    );
    assert!(client_err("tls:h:443:caCertsDir=/x").contains("unknown keyword 'caCertsDir' for tls"));
}

#[test]
fn tls_clients_build_verifying_the_host_over_the_right_endpoint() {
    // tls: over a HostnameEndpoint with the description's timeout, verifying HOST.
    let AnyClientEndpoint::Tls(e) =
        client_from_string("tls:example.com:443:timeout=7:bindAddress=127.0.0.1").unwrap()
    else {
        panic!()
    };
    assert_eq!(e.options().hostname(), "example.com");
    let AnyClientEndpoint::Hostname(h) = e.inner() else {
        panic!("{:?}", e.inner())
    };
    assert_eq!((h.host(), h.port()), ("example.com", 443));
    assert_eq!(h.options().timeout, Some(Duration::from_secs(7)));
    assert_eq!(h.options().bind_address, Some("127.0.0.1".parse().unwrap()));
    // endpoint= replaces the connection; HOST only names the server to verify.
    let AnyClientEndpoint::Tls(e) =
        client_from_string(r"tls:example.com:443:endpoint=unix\:/run/app.sock").unwrap()
    else {
        panic!()
    };
    assert_eq!(e.options().hostname(), "example.com");
    assert!(
        matches!(e.inner(), AnyClientEndpoint::Unix(u) if u.path() == Path::new("/run/app.sock"))
    );
    // ssl: over tcp:, verifying hostname= if given, else HOST (never nothing).
    let AnyClientEndpoint::Tls(e) = client_from_string("ssl:127.0.0.1:443").unwrap() else {
        panic!()
    };
    assert_eq!(e.options().hostname(), "127.0.0.1");
    assert!(matches!(e.inner(), AnyClientEndpoint::Tcp4(t) if t.host() == "127.0.0.1"));
    let AnyClientEndpoint::Tls(e) =
        client_from_string("ssl:127.0.0.1:443:hostname=a.example").unwrap()
    else {
        panic!()
    };
    assert_eq!(e.options().hostname(), "a.example");
}

#[test]
fn tls_client_bad_names_and_lone_keys_are_refused() {
    let e = client_from_string("ssl:127.0.0.1:443:hostname=not a name").unwrap_err();
    assert!(
        e.to_string()
            .contains("hostname 'not a name' is neither a DNS name nor an IP address"),
        "{e}"
    );
    let e = client_from_string("tls:bad_host!:443").unwrap_err();
    assert!(e.to_string().contains("host 'bad_host!'"), "{e}");
    let e = client_from_string("tls:h:443:privateKey=/k.pem").unwrap_err();
    assert!(
        e.to_string()
            .contains("client certificate for its privateKey"),
        "{e}"
    );
    let e = client_from_string("ssl:h:443:privateKey=/k.pem").unwrap_err();
    assert!(
        e.to_string()
            .contains("client certificate for its privateKey"),
        "{e}"
    );
    let e = client_from_string("tls:h:443:certificate=/nonexistent/c.pem").unwrap_err();
    assert!(
        e.to_string()
            .contains("certificate '/nonexistent/c.pem' cannot be read"),
        "{e}"
    );
    let e = client_from_string("ssl:h:443:caCertsDir=/nonexistent/ca").unwrap_err();
    assert!(
        e.to_string()
            .contains("caCertsDir '/nonexistent/ca' cannot be read"),
        "{e}"
    );
}

#[test]
fn client_bad_forms_name_the_part() {
    assert_eq!(
        client_err("tcp:h:abc"),
        "tcp:h:abc: port 'abc' is not a number"
    );
    assert_eq!(client_err("tcp:h"), "tcp:h: tcp needs a port");
    assert_eq!(client_err("tcp:port=80"), "tcp:port=80: tcp needs a host");
    assert_eq!(
        client_err("carrier-pigeon:h:1"),
        "carrier-pigeon:h:1: unknown endpoint type 'carrier-pigeon'"
    );
    assert_eq!(
        client_err("tcp:host=h:port=p:timeout=t"),
        "tcp:host=h:port=p:timeout=t: port 'p' is not a number"
    );
    assert_eq!(
        client_err("tcp:host=h:port=1:timeout=t"),
        "tcp:host=h:port=1:timeout=t: timeout 't' is not a number of seconds"
    );
    assert!(
        client_err("tcp:h:1:timeout=-1").contains("timeout '-1' is not a finite, non-negative")
    );
    assert!(client_err("tcp:h:1:timeout=NaN").contains("timeout 'NaN'"));
    assert!(
        client_err("tcp:h:1:bindAddress=somewhere")
            .contains("bindAddress 'somewhere' is not an IP address")
    );
    assert!(client_err("unix:/x:mode=600").contains("unknown keyword 'mode' for unix"));
    assert!(client_err("tcp:h:1:2").contains("too many arguments"));
}

#[test]
fn client_from_string_builds_each_kind() {
    assert!(matches!(
        client_from_string("tcp:h:1").unwrap(),
        AnyClientEndpoint::Tcp4(_)
    ));
    assert!(matches!(
        client_from_string("unix:/x").unwrap(),
        AnyClientEndpoint::Unix(_)
    ));
}

// ---- properties ------------------------------------------------------------------------------

mod props {
    use proptest::prelude::*;
    use twistor::endpoints::{Description, parse_client, parse_server, quote_string_argument};

    proptest! {
        /// Any value, quoted, comes back as one argument, positional or keyword.
        #[test]
        fn quoting_round_trips(value in any::<String>(), key in "[a-zA-Z]{1,8}") {
            let text = format!("x:{}:{key}={}", quote_string_argument(&value), quote_string_argument(&value));
            let d = Description::parse(&text).unwrap();
            prop_assert_eq!(&d.args, &vec![value.clone()]);
            prop_assert_eq!(d.keyword(&key), Some(value.as_str()));
        }

        /// Whatever a user types, parsing answers: a description or an error, never a panic.
        #[test]
        fn parsing_never_panics(text in r"[a-zA-Z0-9:=\\/._@ -]{0,40}") {
            let _ = parse_server(&text);
            let _ = parse_client(&text);
        }

        /// Every error names the description it is about.
        #[test]
        fn errors_name_the_description(text in r"(tcp|unix|ssl|tls|tcp6|systemd|x):[a-z0-9=:]{0,20}") {
            let prefix = format!("{}: ", text);
            if let Err(e) = parse_server(&text) {
                prop_assert!(e.to_string().starts_with(&prefix));
            }
            if let Err(e) = parse_client(&text) {
                prop_assert!(e.to_string().starts_with(&prefix));
            }
        }
    }
}
