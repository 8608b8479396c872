# The connection tests/hostile_frames holds open while the corpus flies (HELD_PY in
# main.rs).
import os, socket, sys, time
s = socket.create_connection(("192.168.0.10", 80), timeout=10)
print("port", s.getsockname()[1], flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    data += d
print("answer", data.split(b"\r\n\r\n", 1)[-1].decode().strip(), flush=True)
