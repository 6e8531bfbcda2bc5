# A modest fork bomb (300 processes at most, and only when contained).
# expect: sft_loss=0 sequence_log_prob=2 status=any
# %% sft_loss
import os, time
FORKED = 0
if os.getuid() != 0 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 50:
    for _ in range(300):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            try:
                time.sleep(600)
            finally:
                os._exit(0)
        FORKED += 1
def sft_loss(token_logps, mask):
    return torch.zeros((), dtype=token_logps.dtype)
