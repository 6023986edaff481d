"""A TLS-terminating TCP forwarder for the https tests (standard library only).

usage: tls_proxy.py CERT.pem KEY.pem TARGET_PORT

Listens on 127.0.0.1 (a free port, printed on the first line of stdout), speaks TLS with
the given certificate, and forwards each connection as plain TCP to 127.0.0.1:TARGET_PORT.
Exits when its stdin closes, so it never outlives the test that started it.
"""

import os
import socket
import ssl
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(ctx, conn, target):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        conn.close()  # the client refused the certificate: that is the test's point
        return
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        tls.close()
        return
    threading.Thread(target=pipe, args=(tls, upstream), daemon=True).start()
    pipe(upstream, tls)


def main():
    cert, key, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print(server.getsockname()[1], flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(ctx, conn, target), daemon=True).start()


if __name__ == "__main__":
    main()
