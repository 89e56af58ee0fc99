// loadgen: the request-rate client of `npm run bench -- tower` (bench/main.ts builds and runs it).
// N goroutines send GET requests back to back over HTTP/1.1 keep-alive connections (one each, TLS
// with an optional client certificate, HTTP/2 off so every path is measured alike) for a duration
// after a warm-up, and print one JSON object: requests, errors, rps, p50_ms, p99_ms, cpu_s. A load
// generator in Go spends a fraction of the CPU per request that Node's https client does, so on a
// 2-core machine more of it is left to what is measured.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET")
	caFile := flag.String("ca", "", "PEM file of the CA that signed the server's certificate")
	certFile := flag.String("cert", "", "PEM client certificate (optional)")
	keyFile := flag.String("key", "", "PEM client key (with -cert)")
	auth := flag.String("authorization", "", "Authorization header value (optional)")
	concurrency := flag.Int("c", 64, "concurrent clients, one connection each")
	duration := flag.Duration("d", 5*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "unmeasured warm-up before it")
	flag.Parse()
	if *url == "" || *caFile == "" {
		fail("-url and -ca are required")
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fail(err.Error())
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail("no certificate in " + *caFile)
	}
	tc := &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}}
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fail(err.Error())
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     tc,
			MaxIdleConnsPerHost: *concurrency,
			MaxConnsPerHost:     *concurrency,
			DisableCompression:  true,
			// A non-nil empty map turns HTTP/2 off.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		},
	}
	get := func() error {
		req, err := http.NewRequest(http.MethodGet, *url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		if *auth != "" {
			req.Header.Set("Authorization", *auth)
		}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %d", res.StatusCode)
		}
		return err
	}

	var measuring atomic.Bool
	var errors atomic.Int64
	var firstError atomic.Value
	lat := make([][]float64, *concurrency)
	start := time.Now()
	end := start.Add(*warmup + *duration)
	var wg sync.WaitGroup
	for i := 0; i < *concurrency; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				err := get()
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errors.Add(1)
					firstError.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[i] = append(lat[i], float64(time.Since(t0).Microseconds())/1000)
			}
		}(i)
	}
	time.Sleep(*warmup)
	measuring.Store(true)
	t0 := time.Now()
	wg.Wait()
	secs := time.Since(t0).Seconds()
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Float64s(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return all[int(p/100*float64(len(all)-1))]
	}
	out := map[string]any{
		"requests": len(all),
		"errors":   errors.Load(),
		"rps":      float64(len(all)) / secs,
		"p50_ms":   pct(50),
		"p99_ms":   pct(99),
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		// CPU seconds of the whole run, warm-up included
		out["cpu_s"] = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	if e := firstError.Load(); e != nil {
		out["first_error"] = e
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "loadgen: "+msg)
	os.Exit(2)
}
