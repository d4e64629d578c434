#!/bin/bash
# Starts one KRaft node configured as the official image is: KAFKA_FOO_BAR=x becomes foo.bar=x
# ("__" stands for "_" and "___" for "-" in a name), CLUSTER_ID formats empty storage.
set -euo pipefail
config=/opt/kafka/config/server.properties
: > "$config"
while IFS='=' read -r name value; do
    case "$name" in
        KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_PERFORMANCE_OPTS) continue ;;
        KAFKA_*) ;;
        *) continue ;;
    esac
    key=${name#KAFKA_}
    key=${key//___/-}
    key=${key//__/@}
    key=${key//_/.}
    key=${key//@/_}
    printf '%s=%s\n' "${key,,}" "$value" >> "$config"
done < <(env)
java_options=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties ${KAFKA_OPTS:-})
log_dirs=$(sed -n 's/^log\.dirs=//p' "$config")
if [ ! -e "${log_dirs%%,*}/meta.properties" ]; then
    java "${java_options[@]}" -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format \
        --cluster-id "${CLUSTER_ID:?CLUSTER_ID formats the storage on the first start}" --config "$config"
fi
exec java "${java_options[@]}" -cp '/opt/kafka/libs/*' kafka.Kafka "$config"
