package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/procbal/procbal/worker/store/storetest"
)

// A path under /api/items reads PostgreSQL: the bench then starts a
// throwaway PostgreSQL (initdb into a temp dir, as make test does), hands
// every system's workers DATABASE_URL, creates one item, and loads
// "/api/items/{id}" with that item's id. So the report also shows the
// proxies in front of a real database read.

// itemPath is the default database path; {id} is the item created.
const itemPath = "/api/items/{id}"

func needsDatabase(paths []pathSpec) bool {
	return slices.ContainsFunc(paths, func(p pathSpec) bool { return strings.HasPrefix(p.path, "/api/items") })
}

// startDatabase starts PostgreSQL when a path needs it and adds its URL
// (and a small pool per worker) to the workers' environment. The returned
// stop is never nil.
func startDatabase(ctx context.Context, su *setup) (stop func(), err error) {
	if !needsDatabase(su.cfg.paths) {
		return func() {}, nil
	}
	fmt.Fprintln(os.Stderr, "bench: starting PostgreSQL for", itemPath)
	pg, err := storetest.NewPostgres()
	if err != nil {
		return func() {}, fmt.Errorf("starting PostgreSQL: %w", err)
	}
	url, err := pg.CreateDatabase(ctx)
	if err != nil {
		pg.Close()
		return func() {}, fmt.Errorf("creating the bench database: %w", err)
	}
	su.workerEnv = append(su.workerEnv, "DATABASE_URL="+url, "DB_POOL_MAX=4")
	return pg.Close, nil
}

// seedItem creates the item the database path reads, through base (a
// system's URL), and puts its id in the paths.
func seedItem(su *setup, base string) error {
	if !needsDatabase(su.cfg.paths) {
		return nil
	}
	resp, err := localClient.Post(base+"/api/items", "application/json", bytes.NewReader([]byte(`{"name":"bench item"}`)))
	if err != nil {
		return fmt.Errorf("creating the bench item: %w", err)
	}
	defer resp.Body.Close()
	var item struct {
		ID int64 `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&item); err != nil || resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("creating the bench item: status %d: %v", resp.StatusCode, err)
	}
	id := strconv.FormatInt(item.ID, 10)
	for i := range su.cfg.paths {
		su.cfg.paths[i].path = strings.ReplaceAll(su.cfg.paths[i].path, "{id}", id)
	}
	return nil
}
