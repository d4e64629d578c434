// A minimal distribution of the peer stream processor for the benchmark: the Benthos engine
// (the project Redpanda Connect was renamed from) with only the components the peer
// pipelines use: http_server input, kafka_franz input/output, bloblang, sync_response.
// Built by bench/run into a cache outside the repository; never committed as a binary.
package main

import (
	"context"

	_ "github.com/benthosdev/benthos/v4/public/components/io"
	_ "github.com/benthosdev/benthos/v4/public/components/kafka"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
	"github.com/benthosdev/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
