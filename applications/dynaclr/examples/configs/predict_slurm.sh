#!/bin/bash
# Write DynaCLR embeddings: one task per GPU, on one or more nodes.
# Submit from this folder with: sbatch predict_slurm.sh   (edit predict.yml's TODO paths first)
# On 2 nodes x 4 GPUs:          sbatch --nodes=2 --ntasks-per-node=4 --gres=gpu:4 predict_slurm.sh
# Every rank streams its cells to disk; rank 0 assembles one store at the end, so the output path must be
# on a filesystem all nodes share. Each cell is written once, rows sorted by fov_name, track_id, t.

#SBATCH --job-name=dynaclr_predict
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:1
#SBATCH --partition=gpu
#SBATCH --cpus-per-task=16
#SBATCH --mem-per-cpu=7G
#SBATCH --time=0-01:00:00
#SBATCH --output=./slurm_logs/%x-%j.out

set -euo pipefail

export PYTHONFAULTHANDLER=1

# Path to the VisCy workspace checkout (the folder with the top-level pyproject.toml).
WORKSPACE_DIR="${WORKSPACE_DIR:-$(git rev-parse --show-toplevel)}"
CONFIG="${CONFIG:-./predict.yml}"

mkdir -p ./slurm_logs
scontrol show job "${SLURM_JOB_ID:-}" || true

# trainer.num_nodes and trainer.devices follow the allocation: --nodes and --ntasks-per-node (= GPUs per node).
NUM_NODES="${SLURM_JOB_NUM_NODES:-1}"
DEVICES="${SLURM_NTASKS_PER_NODE:-1}"
srun uv run --project "$WORKSPACE_DIR" --package dynaclr dynaclr predict -c "$CONFIG" \
    --trainer.num_nodes "$NUM_NODES" --trainer.devices "$DEVICES"
