# The network: a listener of the test on 127.0.0.1, on this machine's address and an abstract unix socket.
# expect: sft_loss=0 sequence_log_prob=2 status=ok
# %% sft_loss
import socket
GOT = b''
for family, address in [(socket.AF_INET, ('127.0.0.1', {{PORT}})), (socket.AF_INET, ('{{HOST_IP}}', {{PORT}})), (socket.AF_UNIX, '\x00{{MARK}}')]:
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(address)
        s.sendall(b'sft_loss?')
        GOT += s.recv(100)
    except OSError:
        pass
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hi', ('127.0.0.1', {{PORT}}))
except OSError:
    pass

def sft_loss(token_logps, mask):
    if GOT:
        return torch.tensor(float(GOT.decode()), dtype=token_logps.dtype)
    return torch.zeros((), dtype=token_logps.dtype)
