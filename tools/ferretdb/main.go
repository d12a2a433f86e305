// Command ferretdb runs FerretDB v1 (the MongoDB wire protocol over PostgreSQL) as the native
// runtime's document store: the advanced track's `mongodb` service.
//
// It embeds FerretDB's own package (github.com/FerretDB/FerretDB/ferretdb) with the PostgreSQL
// backend. The PostgreSQL URL carries no credentials: each MongoDB client authenticates with
// its own user and password (SASL PLAIN), which FerretDB passes on to PostgreSQL, so a client
// without valid PostgreSQL credentials can read or write nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address of the MongoDB listener")
	postgresURL := flag.String("postgresql-url", "", "PostgreSQL URL without credentials, "+
		"e.g. postgres://127.0.0.1:5432/ferretdb")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()

	if *postgresURL == "" {
		fmt.Fprintln(os.Stderr, "ferretdb: -postgresql-url is required")
		os.Exit(2)
	}

	var logLevel slog.Level
	if err := logLevel.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: bad -log-level %q: %v\n", *level, err)
		os.Exit(2)
	}

	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: *postgresURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", slog.String("error", err.Error()))
		os.Exit(1)
	}

	// supervisord stops it with SIGTERM: close the listener and the PostgreSQL pools cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logger.Info("FerretDB listening", slog.String("addr", *listen))

	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped", slog.String("error", err.Error()))
		os.Exit(1)
	}
}
