#!/bin/bash
# A load generator for the concurrency test: a shell loop of Go CLI calls.
# Usage: _go_worker.sh GRAPH RUN DRIVER PREFIX ITERATIONS START_FILE READY_FILE
# Prints one line per acknowledged operation ("create-layer TIME NAME ID", "add-names TIME NAME ID",
# "delete-layer TIME ID", "create-image TIME NAME ID", "delete-image TIME ID") and "error STEP NAME RC" per
# failure; the Go binary's stderr goes to this script's stderr.  The same schedule as
# _api_worker.py.  IDs, not names, are passed to deletions (Go 1.43 skips its safety checks
# when given a name).
set -u
go=(/usr/bin/containers-storage --graph "$1" --run "$2" --storage-driver "$3")
prefix=$4
iterations=$5
: > "$7"
for _ in $(seq 6000); do [ -e "$6" ] && break; sleep 0.01; done
[ -e "$6" ] || { echo "error start - -"; exit 1; }

live_layers=()
live_images=()
for ((i = 0; i < iterations; i++)); do
    name="$prefix-$i"
    if out=$("${go[@]}" create-layer -n "$name"); then
        read -r id _ <<<"$out"
        echo "create-layer $EPOCHREALTIME $name $id"
    else
        echo "error create-layer $name $?"; continue
    fi
    if "${go[@]}" add-names -n "$name-alias" "$id"; then
        echo "add-names $EPOCHREALTIME $name-alias $id"
    else
        echo "error add-names $name $?"; continue
    fi
    live_layers+=("$id")
    if ((i % 3 == 2)); then
        victim=${live_layers[0]}
        live_layers=("${live_layers[@]:1}")
        if "${go[@]}" delete-layer "$victim"; then
            echo "delete-layer $EPOCHREALTIME $victim"
        else
            echo "error delete-layer $name $?"
        fi
    fi
    if ((i % 4 == 3)); then
        if out=$("${go[@]}" create-image -n "$prefix-img-$i" -m "$name"); then
            read -r id _ <<<"$out"
            echo "create-image $EPOCHREALTIME $prefix-img-$i $id"
            live_images+=("$id")
        else
            echo "error create-image $name $?"
        fi
    fi
    if ((i % 8 == 7)) && ((${#live_images[@]} > 0)); then
        victim=${live_images[0]}
        live_images=("${live_images[@]:1}")
        if "${go[@]}" delete-image "$victim" >/dev/null; then
            echo "delete-image $EPOCHREALTIME $victim"
        else
            echo "error delete-image $name $?"
        fi
    fi
done
