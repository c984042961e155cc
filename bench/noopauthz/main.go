// Command noopauthz is the baseline for load tests: an Envoy ext_authz gRPC
// server that allows every request without looking at it. By default it
// answers with an empty OK; with -response it answers every check with the
// given CheckResponse (protojson), so a load test can separate the cost of
// deciding from the cost of carrying the answer.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/encoding/protojson"
)

type noop struct {
	authv3.UnimplementedAuthorizationServer
	canned *authv3.CheckResponse
}

func (n noop) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if n.canned != nil {
		return n.canned, nil
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{}}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9391", "listen address")
	response := flag.String("response", "", "answer every check with this CheckResponse (protojson file)")
	flag.Parse()
	var n noop
	if *response != "" {
		b, err := os.ReadFile(*response)
		if err != nil {
			log.Fatal(err)
		}
		n.canned = &authv3.CheckResponse{}
		if err := protojson.Unmarshal(b, n.canned); err != nil {
			log.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, n)
	reflection.Register(s)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); s.GracefulStop() }()
	if err := s.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
