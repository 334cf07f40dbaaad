#!/bin/bash
# Train DynaCLR with DDP: one task per GPU, 4 GPUs per node, on one or more nodes.
# Submit from this folder with: sbatch fit_slurm.sh   (edit fit.yml's TODO paths first)
# On 2 nodes (8 GPUs):          sbatch --nodes=2 fit_slurm.sh
# Resume an interrupted run:    CKPT_PATH=path/to/last.ckpt sbatch fit_slurm.sh

#SBATCH --job-name=dynaclr_fit
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --partition=gpu
#SBATCH --cpus-per-task=14
#SBATCH --mem-per-cpu=15G
#SBATCH --time=0-20:00:00
#SBATCH --output=./slurm_logs/%x-%j.out

set -euo pipefail

export NCCL_DEBUG=INFO
export PYTHONFAULTHANDLER=1

# Path to the VisCy workspace checkout (the folder with the top-level pyproject.toml).
WORKSPACE_DIR="${WORKSPACE_DIR:-$(git rev-parse --show-toplevel)}"
CONFIG="${CONFIG:-./fit.yml}"
CKPT_PATH="${CKPT_PATH:-}"

cleanup() {
    echo "Job ${SLURM_JOB_ID:-local} finished with status $? at $(date)"
}
trap cleanup EXIT

mkdir -p ./slurm_logs
scontrol show job "${SLURM_JOB_ID:-}" || true

# One task per GPU on every node: Lightning reads the SLURM environment (ranks, nodes, master address and
# port) and sets up DDP across all tasks. trainer.num_nodes and trainer.devices must match the allocation,
# so they are taken from it: --nodes and --ntasks-per-node (= GPUs per node).
NUM_NODES="${SLURM_JOB_NUM_NODES:-1}"
DEVICES="${SLURM_NTASKS_PER_NODE:-4}"
RESUME=()
if [[ -n "$CKPT_PATH" ]]; then
    RESUME=(--ckpt_path "$CKPT_PATH")
fi
srun uv run --project "$WORKSPACE_DIR" --package dynaclr dynaclr fit -c "$CONFIG" \
    --trainer.num_nodes "$NUM_NODES" --trainer.devices "$DEVICES" ${RESUME[@]+"${RESUME[@]}"}
