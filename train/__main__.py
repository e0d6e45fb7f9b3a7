"""``python -m train ...`` = ``hoi-edge train ...``; the entry point for ``torchrun --nproc_per_node N -m train ...``."""

from train.cli import train_command

if __name__ == "__main__":
    train_command(prog_name="python -m train")
