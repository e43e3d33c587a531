package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDatabasePathDetection(t *testing.T) {
	paths, err := parsePaths([]string{"/api/health", "post:10:/api/health"})
	if err != nil {
		t.Fatal(err)
	}
	if needsDatabase(paths) {
		t.Error("no database path, yet PostgreSQL would start")
	}
	su := &setup{}
	su.cfg.paths = paths
	stop, err := startDatabase(context.Background(), su)
	if err != nil || len(su.workerEnv) != 0 {
		t.Fatalf("without a database path: %v %v", err, su.workerEnv)
	}
	stop()
	if paths, _ = parsePaths([]string{itemPath}); !needsDatabase(paths) {
		t.Error(itemPath + " not seen as a database path")
	}
}

// The item is created through the system and its id lands in the path.
func TestSeedItem(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/items" {
			http.Error(w, "no", 400)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":42,"name":"bench item"}`))
	}))
	defer srv.Close()
	paths, _ := parsePaths([]string{"/api/health", itemPath})
	su := &setup{}
	su.cfg.paths = paths
	if err := seedItem(su, srv.URL); err != nil {
		t.Fatal(err)
	}
	if got := su.cfg.paths[1]; got.path != "/api/items/42" || got.spec != itemPath {
		t.Fatalf("path %+v", got)
	}
}
